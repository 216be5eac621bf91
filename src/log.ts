import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Paths that could ever hold a credential. The request serializer already logs only a safe subset,
 * so these are the second line of defence for objects logged by hand (errors, library responses).
 */
export const REDACT_PATHS = [
  'req.headers.cookie',
  'req.headers.authorization',
  'res.headers["set-cookie"]',
  'headers.cookie',
  'headers.authorization',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.logout_token',
  '*.client_secret',
  '*.code_verifier',
  '*.accessToken',
  '*.refreshToken',
  '*.idToken',
  '*.sessionId',
  'access_token',
  'refresh_token',
  'id_token',
  'accessToken',
  'refreshToken',
  'idToken',
  'sessionId',
  'secret',
  'clientSecret',
];

/**
 * JSON lines to stdout. Writes are asynchronous, and lines are gathered into writes of a few KB:
 * one write per line was a tenth of the proxy's CPU in a profile of the bench, as each went through
 * libuv's thread pool on its own. A line waits at most FLUSH_MS, so a quiet process still logs
 * promptly. pino flushes the buffer itself when the process exits.
 */
const BATCH_BYTES = 8192;
const FLUSH_MS = 200;

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'coatcheck' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ??
      pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES, periodicFlush: FLUSH_MS }),
  );
}

/**
 * A logger for the one line per request only, into the same stream at the same level, without
 * redaction: those lines hold fixed fields built by request-log.ts (id, method, path without query,
 * status, time) and nothing else. Redaction is a visible share of the proxy's CPU in a profile of
 * the bench, and these lines have nothing to redact.
 */
export function createAccessLogger(log: Logger): Logger {
  return pino(
    { level: log.level, base: { service: 'coatcheck' }, timestamp: pino.stdTimeFunctions.isoTime },
    (log as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym],
  );
}
