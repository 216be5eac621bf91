import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWTPayload } from 'jose';
import { createDpopVerifier } from '../../src/demo/dpop-verifier.js';

/** What a proof-checking API saw: every refusal with its reason, and every call it served. */
export interface DpopUpstreamLog {
  readonly served: { method: string; path: string; sub: unknown; jkt: string }[];
  readonly refused: string[];
  challenges: number;
}

export interface DpopUpstream {
  readonly url: string;
  readonly log: DpopUpstreamLog;
  /** Starts demanding a new nonce: the next proof without it is challenged. */
  rotateNonce(): void;
  close(): Promise<void>;
}

/**
 * An API that accepts only DPoP-bound access tokens with a valid proof, as RFC 9449 §7 asks of a
 * resource server: the proof's signature, typ, htm, htu, ath, iat and jti (never twice), its key's
 * thumbprint equal to the token's cnf.jkt, and (when `nonces`) its own current nonce.
 */
export async function startDpopUpstream(
  verifyAccessToken: (token: string) => Promise<JWTPayload>,
  opts: { nonces?: boolean } = {},
): Promise<DpopUpstream> {
  const log: DpopUpstreamLog = { served: [], refused: [], challenges: 0 };
  let nonce = randomBytes(16).toString('base64url');
  let url = '';

  const verify = createDpopVerifier({
    verifyAccessToken,
    ...(opts.nonces ? { nonce: () => nonce } : {}),
  });

  const server: Server = createServer((req, res) => {
    void (async () => {
      // The request body, whole, before answering: a challenged POST must not leave it half read.
      for await (const _ of req);
      const path = (req.url ?? '/').split('?')[0]!;
      const verdict = await verify({
        method: req.method!,
        htu: `${url}${path}`,
        authorization: req.headers.authorization,
        proof: req.headers.dpop,
      });
      if (!verdict.ok) {
        log.refused.push(verdict.reason);
        if (verdict.nonce) log.challenges++;
        res.writeHead(401, {
          'content-type': 'application/json',
          ...(verdict.challenge ? { 'www-authenticate': verdict.challenge } : {}),
          ...(verdict.nonce ? { 'dpop-nonce': verdict.nonce } : {}),
        });
        res.end(JSON.stringify({ refused: verdict.reason }));
        return;
      }
      const at = verdict.accessToken;
      log.served.push({ method: req.method!, path, sub: at.sub, jkt: verdict.jkt });
      res.writeHead(200, {
        'content-type': 'application/json',
        ...(opts.nonces ? { 'dpop-nonce': nonce } : {}),
      });
      res.end(JSON.stringify({ ok: true, sub: at.sub, method: req.method }));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    log,
    rotateNonce: () => {
      nonce = randomBytes(16).toString('base64url');
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
