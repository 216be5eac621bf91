import type { Request, Response } from 'express';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { MANAGEMENT_PATHS } from '../http/management-paths.js';
import { requestSession } from '../http/request-session.js';

/** GET /bff/user (X-CSRF: 1): who is logged in, where to log out, and when the session ends. Never a token. */
export function user(ctx: AppContext) {
  return async (req: Request, res: Response): Promise<void> => {
    res.setHeader('Cache-Control', 'no-store');
    const session = await requestSession(ctx, req, res);
    if (!session) throw new BffError('unauthenticated');
    const { tokens } = session;
    // Without a refresh token the session cannot outlive its access token.
    if (!tokens.refreshToken && tokens.expiresAt <= ctx.now()) {
      await ctx.sessions.destroy(session);
      ctx.metrics.sessionEnds.expired.inc();
      throw new BffError('session_expired');
    }
    const data = session.data();
    res.json({
      claims: data.claims,
      logoutUrl: `${ctx.config.basePath}${MANAGEMENT_PATHS.logout}?sid=${encodeURIComponent(data.logoutId)}`,
      sessionExpiresAt: new Date(session.expiresAt).toISOString(),
    });
  };
}
