import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';
import { underPrefix } from './path-prefix.js';

/** Whether the address at this hop (0 is the socket's peer) is a proxy whose forwarding headers count. */
export type TrustProxy = (addr: string, hop: number) => boolean;

/**
 * BFF_TRUST_PROXY compiled the way Express compiles its `trust proxy` setting. Express is then given
 * this very function, so its req.secure and req.ip agree with the API fast path.
 */
export function compileTrust(setting: boolean | number | string): TrustProxy {
  if (setting === true) return () => true;
  if (setting === false) return () => false;
  if (typeof setting === 'number') return (_addr, hop) => hop < setting;
  return proxyaddr.compile(setting.split(',').map((s) => s.trim()));
}

/**
 * The path and query below `basePath`, or undefined for a URL outside it. Segment-aware (see
 * underPrefix): with base `/app`, `/app/x` gives `/x`, `/app` gives `/`, and `/appx` is outside.
 */
export function pathBelowBase(basePath: string, url: string): string | undefined {
  if (!basePath) return url;
  if (!underPrefix(url, basePath)) return undefined;
  return url.slice(basePath.length) || '/';
}

/** What a request says about itself once the trust policy is applied; one answer for Express and the fast path. */
export interface RequestFacts {
  readonly trust: TrustProxy;
  /**
   * Secure (so cookies get the __Host- name and the Secure flag) when the request came over https,
   * directly or through a trusted proxy, and whenever the public URL is https: then the browser is
   * on https whatever this hop says.
   */
  secure(req: IncomingMessage): boolean;
  /** X-Forwarded-For for the upstream: client first, then every trusted proxy, then the peer; just the peer without trust. */
  forwardedFor(req: IncomingMessage): string;
  /** pathBelowBase with BFF_PUBLIC_URL's path. */
  pathBelowBase(url: string): string | undefined;
}

/** Built once from config; nothing here allocates per request beyond what its answer needs. */
export function requestFacts(config: {
  readonly trustProxy: boolean | number | string;
  readonly publicUrl: string;
  readonly basePath: string;
}): RequestFacts {
  const trust = compileTrust(config.trustProxy);
  const publicHttps = config.publicUrl.startsWith('https:');
  const basePath = config.basePath;
  return {
    trust,
    secure(req) {
      if (publicHttps) return true;
      // Express's req.protocol: TLS on the socket, unless a trusted proxy's X-Forwarded-Proto says otherwise.
      const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
      if (!trust(req.socket.remoteAddress ?? '', 0)) return encrypted;
      const xfp = req.headers['x-forwarded-proto'];
      if (typeof xfp !== 'string' || !xfp) return encrypted;
      const comma = xfp.indexOf(',');
      return (comma === -1 ? xfp : xfp.slice(0, comma)).trim() === 'https';
    },
    forwardedFor(req) {
      return proxyaddr.all(req, trust).reverse().join(', ');
    },
    pathBelowBase(url) {
      return pathBelowBase(basePath, url);
    },
  };
}
