import type { RouteConfig } from '../config/schema.js';
import { isManagementPath } from '../http/management-paths.js';
import { underPrefix } from '../http/path-prefix.js';

export interface CompiledRoute {
  readonly path: string;
  readonly origin: string;
  /** The target's path without a trailing slash: '' or '/v1'. */
  readonly basePath: string;
}

export interface RouteMatch {
  readonly route: CompiledRoute;
  /** What follows the route's path, starting with '/' or empty; query included. */
  readonly rest: string;
}

/** Longest path first, so `/api/admin` wins over `/api`; matching is on whole segments (`/apix` is not `/api`). */
export function compileRoutes(
  routes: readonly RouteConfig[],
): (pathAndQuery: string) => RouteMatch | undefined {
  const table: CompiledRoute[] = routes
    .map((r) => {
      const target = new URL(r.target);
      return {
        path: r.path === '/' ? '' : r.path,
        origin: target.origin,
        basePath: target.pathname.replace(/\/+$/, ''),
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
