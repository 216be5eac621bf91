import express, { type NextFunction, type Request, type Response } from 'express';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { verifyLogoutToken } from '../oidc/logout.js';
import { logoutTokenTarget } from '../session/sessions.js';

const parseForm = express.urlencoded({ extended: false, limit: '16kb', parameterLimit: 10 });

/**
 * POST /bff/backchannel-logout: the IdP tells every relying party a user's session ended. Sessions
 * are found through the sid/sub indexes in the shared store, so every replica sees the logout at once.
 */
export function backchannelLogout(ctx: AppContext) {
  const handle = async (req: Request, res: Response): Promise<void> => {
    res.setHeader('Cache-Control', 'no-store');
    const token = (req.body as Record<string, unknown> | undefined)?.logout_token;
    if (typeof token !== 'string' || token.length === 0) {
      throw new BffError('invalid_logout_token', { message: 'The form field logout_token is missing.' });
    }
    const claims = await verifyLogoutToken(ctx.oidc, token);
    // coatcheck's records first: they hold the tokens, and once they are gone the user is logged out.
    const ended = await ctx.sessions.endByLogoutToken(claims);
    if (ended === undefined) {
      throw new BffError('invalid_logout_token', { message: 'This logout token was already used.' });
    }
    const host = ctx.hostSession;
    if (host) {
      // Then the host's sessions, best effort. Their failure is logged and the IdP still gets its 200:
      // asking for a retry would gain nothing, since the retried token is refused as used, and a host
      // session left behind has no tokens to reach. Its index entries stay, so the user's next
      // sub-wide logout destroys it.
      const { kind, value } = logoutTokenTarget(claims);
      await host.endIndexed(req, kind, value).catch((err: unknown) => {
        ctx.log.warn(
          { reqId: res.locals.requestId, err: { message: (err as Error).message } },
          "back-channel logout: coatcheck's sessions ended, but the host's sessions were not destroyed in its store",
        );
      });
    }
    ctx.metrics.sessionEnds.backchannel.inc(ended);
    ctx.log.info({ reqId: res.locals.requestId, sub: claims.sub, ended }, 'back-channel logout');
    res.status(200).end();
  };
  return [
    (req: Request, res: Response, next: NextFunction) => {
      parseForm(req, res, (err?: unknown) => {
        if (err)
          return next(
            new BffError('invalid_logout_token', {
              message: 'The request body is not a valid form.',
              cause: err,
            }),
          );
        next();
      });
    },
    handle,
  ];
}
