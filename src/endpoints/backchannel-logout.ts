import express, { type NextFunction, type Request, type Response } from 'express';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { verifyLogoutToken } from '../oidc/logout.js';

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
    const host = ctx.hostSession;
    const ended = await ctx.sessions.endByLogoutToken(
      claims,
      host && ((kind, value) => host.endIndexed(req, kind, value)),
    );
    if (ended === undefined) {
      throw new BffError('invalid_logout_token', { message: 'This logout token was already used.' });
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
