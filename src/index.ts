/**
 * The package's public surface: `createBff(options)` for an Express app, and the types around it.
 * The standalone server (`npx coatcheck`) is dist/main.js, built on the same createBff.
 */
export {
  createBff,
  UnknownResourceError,
  type AccessTokenOptions,
  type Bff,
  type BffDeps,
  type BffRequestState,
  type RequireSessionOptions,
} from './bff.js';
export type { BffOptions, RouteOption } from './options.js';
export { ConfigError, type Config } from './config/load.js';
export { BffError, ERRORS, type ErrorCode } from './errors.js';
