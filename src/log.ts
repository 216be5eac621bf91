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

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'coatcheck' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
