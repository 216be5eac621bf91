import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';

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
  const seenJti = new Set<string>();
  let nonce = randomBytes(16).toString('base64url');
  let url = '';

  const server: Server = createServer((req, res) => {
    const refuse = (reason: string, extra: Record<string, string> = {}) => {
      log.refused.push(reason);
      res.writeHead(401, { 'content-type': 'application/json', ...extra });
      res.end(JSON.stringify({ refused: reason }));
    };
    void (async () => {
      // The request body, whole, before answering: a challenged POST must not leave it half read.
      for await (const _ of req);
      const auth = req.headers.authorization ?? '';
      const proof = req.headers.dpop;
      if (!auth.startsWith('DPoP ')) return refuse('not a DPoP token', { 'www-authenticate': 'DPoP' });
      if (typeof proof !== 'string') return refuse('no proof', { 'www-authenticate': 'DPoP' });
      const token = auth.slice(5);
      let claims: JWTPayload;
      let jkt: string;
      try {
        const header = decodeProtectedHeader(proof);
        const verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', maxTokenAge: 60 });
        claims = verified.payload;
        jkt = await calculateJwkThumbprint(header.jwk!);
      } catch (err) {
        return refuse(`bad proof: ${(err as Error).message}`);
      }
      const path = (req.url ?? '/').split('?')[0]!;
      if (claims.htm !== req.method) return refuse(`htm ${String(claims.htm)}`);
      if (claims.htu !== `${url}${path}`) return refuse(`htu ${String(claims.htu)}`);
      if (claims.ath !== createHash('sha256').update(token).digest('base64url')) return refuse('ath');
      if (typeof claims.jti !== 'string' || seenJti.has(claims.jti)) return refuse('jti replayed');
      seenJti.add(claims.jti);
      if (opts.nonces && claims.nonce !== nonce) {
        log.challenges++;
        return refuse('nonce', {
          'www-authenticate':
            'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
          'dpop-nonce': nonce,
        });
      }
      let at: JWTPayload;
      try {
        at = await verifyAccessToken(token);
      } catch (err) {
        return refuse(`bad access token: ${(err as Error).message}`);
      }
      const cnf = at.cnf as { jkt?: string } | undefined;
      if (cnf?.jkt !== jkt) return refuse('cnf.jkt does not match the proof key');
      log.served.push({ method: req.method!, path, sub: at.sub, jkt });
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
