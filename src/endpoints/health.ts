import type { Request, Response } from 'express';
import type { AppContext } from '../context.js';

export function healthz(_req: Request, res: Response): void {
  res.setHeader('Cache-Control', 'no-store');
  res.json({ status: 'ok' });
}

const stopping = new WeakSet<AppContext>();

/** From now on this instance's /readyz answers 503, so load balancers take it out of rotation. */
export function markStopping(ctx: AppContext): void {
  stopping.add(ctx);
}

/**
 * GET /readyz: 200 while the session store answers and the IdP's metadata has been loaded. Once loaded,
 * an IdP outage shows in the body but keeps the instance ready: otherwise every replica would leave the
 * load balancer at once, and users whose tokens are still valid would lose service too.
 */
export function readyz(ctx: AppContext) {
  return async (_req: Request, res: Response): Promise<void> => {
    res.setHeader('Cache-Control', 'no-store');
    if (stopping.has(ctx)) {
      res.status(503).json({ status: 'shutting_down', checks: {} });
      return;
    }
    // A discovery that failed at boot is retried here, so readiness heals with the IdP.
    const loaded =
      ctx.oidc.metadataLoaded() ||
      (await ctx.oidc.configuration().then(
        () => true,
        () => false,
      ));
    const [store, idp] = await Promise.all([
      ctx.sessions.checkStore().then(
        () => true,
        () => false,
      ),
      ctx.oidc.metadataReachable(),
    ]);
    // Unlike an outage, an IdP that lacks what the configuration requires (BFF_PAR=required) will not
    // heal by waiting, and no login can succeed here: this instance is not ready.
    const unsuitable = loaded && ctx.oidc.unsuitable() !== undefined;
    const ready = store && loaded && !unsuitable && !stopping.has(ctx);
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'not_ready',
      checks: {
        store: store ? 'ok' : 'unreachable',
        idp: !idp ? 'unreachable' : unsuitable ? 'unsuitable' : 'ok',
      },
    });
  };
}
