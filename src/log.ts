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
 * JSON lines to stdout. Writes are asynchronous: under load, lines written while one is in flight
 * are coalesced into one write, which the bench shows to be cheaper for the proxy than pino's
 * synchronous default. pino flushes the buffer itself when the process exits.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'coatcheck' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
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
