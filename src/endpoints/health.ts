import type { Request, Response } from 'express';
import type { AppContext } from '../context.js';

export function healthz(_req: Request, res: Response): void {
  res.setHeader('Cache-Control', 'no-store');
  res.json({ status: 'ok' });
}

/** GET /readyz: 200 only while both the session store and the IdP's metadata answer. */
export function readyz(ctx: AppContext) {
  return async (_req: Request, res: Response): Promise<void> => {
    res.setHeader('Cache-Control', 'no-store');
    const [store, idp] = await Promise.all([
      ctx.sessions.checkStore().then(
        () => true,
        () => false,
      ),
      ctx.oidc.metadataReachable(),
    ]);
    res.status(store && idp ? 200 : 503).json({
      status: store && idp ? 'ready' : 'not_ready',
      checks: { store: store ? 'ok' : 'unreachable', idp: idp ? 'ok' : 'unreachable' },
    });
  };
}
