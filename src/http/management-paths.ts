import { underPrefix } from './path-prefix.js';

/**
 * coatcheck's own endpoints live below one base path (Duende's ManagementBasePath), itself below
 * BFF_PUBLIC_URL's path. Routing, the API routes' overlap check and every URL built to an endpoint
 * derive from it, so the endpoints can move together.
 */
export const MANAGEMENT_BASE_PATH = '/bff';

export const MANAGEMENT_PATHS = {
  login: `${MANAGEMENT_BASE_PATH}/login`,
  callback: `${MANAGEMENT_BASE_PATH}/callback`,
  user: `${MANAGEMENT_BASE_PATH}/user`,
  logout: `${MANAGEMENT_BASE_PATH}/logout`,
  backchannelLogout: `${MANAGEMENT_BASE_PATH}/backchannel-logout`,
} as const;

/** The base itself or anything below it (query allowed): `/bff`, `/bff/x`, `/bff?x`, but not `/bffx`. */
export function isManagementPath(pathAndQuery: string): boolean {
  return underPrefix(pathAndQuery, MANAGEMENT_BASE_PATH);
}
