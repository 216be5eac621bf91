/**
 * Whether `pathAndQuery` is `prefix` or lies below it on whole segments: the prefix is followed by
 * nothing, '/' or '?'. So `/api`, `/api/x` and `/api?q` are below `/api`; `/apix` is not. The empty
 * prefix holds every path. Base path, management paths and API routes all match this one way.
 */
export function underPrefix(pathAndQuery: string, prefix: string): boolean {
  if (!pathAndQuery.startsWith(prefix)) return false;
  const next = pathAndQuery.charCodeAt(prefix.length);
  return Number.isNaN(next) || next === 47 || next === 63;
}
