import { request } from 'undici';

/** One answered (or failed) call of a load loop, stamped with when it finished. */
export interface LoadSample {
  readonly at: number;
  readonly status: number;
  /** The JSON error code, for a non-2xx answer that had one. */
  readonly error?: string;
  /** The network error, when no answer came at all. */
  readonly failure?: string;
  readonly worker: number;
}

export interface LoadLoop {
  readonly samples: LoadSample[];
  /** Resolves with the first sample from now on for which `pred` holds. */
  until(pred: (s: LoadSample) => boolean, timeoutMs: number, what: string): Promise<LoadSample>;
  stop(): Promise<void>;
}

/**
 * `workers` concurrent callers, each sending one request after another until stopped. `next(worker,
 * i)` says what to call. Samples are kept in order; waiting is on arrivals, never on a timer alone.
 */
export function startLoad(
  workers: number,
  next: (worker: number, i: number) => { url: string; headers: Record<string, string> },
): LoadLoop {
  const samples: LoadSample[] = [];
  const waiters = new Set<(s: LoadSample) => void>();
  let running = true;
  const record = (s: LoadSample): void => {
    samples.push(s);
    for (const w of [...waiters]) w(s);
  };
  const loops = Array.from({ length: workers }, async (_, worker) => {
    for (let i = 0; running; i++) {
      const { url, headers } = next(worker, i);
      try {
        const res = await request(url, { headers, headersTimeout: 20_000, bodyTimeout: 20_000 });
        const text = await res.body.text();
        let error: string | undefined;
        if (res.statusCode >= 300) {
          try {
            error = (JSON.parse(text) as { error?: string }).error;
          } catch {
            error = undefined;
          }
        }
        record({ at: Date.now(), status: res.statusCode, error, worker });
      } catch (err) {
        record({
          at: Date.now(),
          status: 0,
          failure: (err as { code?: string }).code ?? String(err),
          worker,
        });
      }
    }
  });
  return {
    samples,
    until(pred, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        const check = (s: LoadSample): void => {
          if (!pred(s)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(s);
        };
        waiters.add(check);
      });
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Counts of samples by "status error" (or failure), for a test's printed figures. */
export function tally(samples: readonly LoadSample[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    const key = s.failure ? `failed ${s.failure}` : s.error ? `${s.status} ${s.error}` : String(s.status);
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}
