import { API_METHODS, type RouteInput } from '../config/schema.js';
import { isManagementPath } from '../http/management-paths.js';
import { underPrefix } from '../http/path-prefix.js';
import { tokenTarget, type TokenTarget } from '../oidc/token-set.js';

export interface CompiledRoute {
  readonly path: string;
  readonly origin: string;
  /** The target's path without a trailing slash: '' or '/v1'. */
  readonly basePath: string;
  /** `user`: a session is required and its token attached; `optional`: attached when there is one; `none`: never. */
  readonly token: 'user' | 'optional' | 'none';
  /** The route's own token; undefined for the login's. */
  readonly tokenTarget: TokenTarget | undefined;
  readonly methods: ReadonlySet<string>;
  /** The Allow header of a 405. */
  readonly allow: string;
}

export interface RouteMatch {
  readonly route: CompiledRoute;
  /** What follows the route's path, starting with '/' or empty; query included. */
  readonly rest: string;
}

/** Longest path first, so `/api/admin` wins over `/api`; matching is on whole segments (`/apix` is not `/api`). */
export function compileRoutes(
  routes: readonly RouteInput[],
): (pathAndQuery: string) => RouteMatch | undefined {
  const table: CompiledRoute[] = routes
    .map((r) => {
      const target = new URL(r.target);
      const methods = r.methods ?? API_METHODS;
      return {
        path: r.path === '/' ? '' : r.path,
        origin: target.origin,
        basePath: target.pathname.replace(/\/+$/, ''),
        token: r.token ?? 'user',
        tokenTarget: r.token === 'none' ? undefined : tokenTarget(r),
        methods: new Set(methods),
        allow: methods.join(', '),
      };
    })
    .sort((a, b) => b.path.length - a.path.length);

  return (pathAndQuery) => {
    // coatcheck's own endpoints win over any route, even a catch-all "/".
    if (isManagementPath(pathAndQuery)) return undefined;
    for (const route of table) {
      if (underPrefix(pathAndQuery, route.path))
        return { route, rest: pathAndQuery.slice(route.path.length) };
    }
    return undefined;
  };
}
