import { fileURLToPath } from 'node:url';
import express from 'express';
import session from 'express-session';
import helmet from 'helmet';
import { RedisStore } from 'connect-redis';
import { Redis } from 'ioredis';
// In your app: from 'coatcheck'.
import { createBff, type Bff, type BffDeps, type BffOptions } from '../../src/index.js';

export interface ExampleSettings {
  /** The IdP, and this app's registration with it. */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Where browsers reach this app: the IdP redirects to `${publicUrl}/bff/callback`. */
  readonly publicUrl: string;
  /** coatcheck's secret: signs its login cookies and, with the session id, derives the sealing keys. */
  readonly sessionSecret: string;
  /** express-session's own secret, for its cookie. */
  readonly cookieSecret: string;
  /** One Redis for both: express-session's store (connect-redis) and coatcheck's. */
  readonly redisUrl: string;
  /** The API that browsers reach at /api and the server route calls itself. */
  readonly apiUrl: string;
  /** Anything else coatcheck takes (scopes, authParams, timeouts), by its option name. */
  readonly bff?: Partial<BffOptions>;
}

export interface ExampleApp {
  readonly app: express.Express;
  readonly bff: Bff;
  close(): Promise<void>;
}

/**
 * An Express app with its own sessions (express-session on Redis through connect-redis) that mounts
 * coatcheck. The browser has one cookie, express-session's. Tokens stay in coatcheck's store: the
 * SPA calls the API through /api, and the server calls it with getAccessToken(req).
 */
export async function createExampleApp(settings: ExampleSettings, deps: BffDeps = {}): Promise<ExampleApp> {
  const https = settings.publicUrl.startsWith('https:');
  const redis = new Redis(settings.redisUrl);
  const store = new RedisStore({ client: redis, prefix: 'example:sess:' });
  const cookieName = 'example.sid';
  const cookie = { httpOnly: true, sameSite: 'lax', secure: https, maxAge: 8 * 3600 * 1000 } as const;
  const bff = await createBff(
    {
      issuer: settings.issuer,
      clientId: settings.clientId,
      clientSecret: settings.clientSecret,
      publicUrl: settings.publicUrl,
      sessionSecret: settings.sessionSecret,
      redisUrl: settings.redisUrl,
      routes: [{ path: '/api', target: settings.apiUrl }],
      session: 'express-session',
      // express-session's cookie, which coatcheck never forwards to an API, and its store, where
      // back-channel logout destroys sessions even at a replica that has served no request yet.
      sessionCookieName: cookieName,
      hostSessionStore: store,
      // The same cookie settings express-session gets, so coatcheck checks them at start-up.
      hostSessionCookie: cookie,
      ...settings.bff,
    },
    deps,
  );

  const app = express();
  app.disable('x-powered-by');
  if (https) app.set('trust proxy', 1);
  app.use(helmet());
  app.use(
    session({
      store,
      name: cookieName,
      secret: settings.cookieSecret,
      // The worst case for tokens kept in a session: every request writes the whole session back.
      // coatcheck keeps its tokens elsewhere, so nothing old can be written over a rotated refresh token.
      resave: true,
      rolling: true,
      saveUninitialized: false,
      cookie,
    }),
  );
  // After express-session: coatcheck reads req.sessionID, and regenerates or destroys req.session.
  app.use(bff.middleware);

  app.use(express.static(fileURLToPath(new URL('./public', import.meta.url))));

  // A page navigation cannot send X-CSRF, so this one route opts out; its answer is not a secret either.
  app.get('/whoami', bff.requireSession({ csrf: false }), (req, res) => {
    res.json({ sub: req.bff!.sub, name: req.bff!.claims.name });
  });

  // The server calls the API itself, with the user's token: refreshed first when due, once across replicas.
  app.get('/orders', bff.requireSession(), async (req, res) => {
    const token = await bff.getAccessToken(req);
    const answer = await fetch(`${settings.apiUrl}/orders`, {
      headers: { authorization: `Bearer ${token}` },
    });
    res.status(answer.status).json({ from: 'server', upstream: await answer.json() });
  });

  // getAccessToken's refusals (no session: 401, IdP down: 503) carry their status and JSON.
  app.use((err: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => {
    const known = err as { status?: unknown; toJSON?: () => unknown };
    if (typeof known.status === 'number' && known.toJSON) res.status(known.status).json(known.toJSON());
    else next(err);
  });

  return {
    app,
    bff,
    async close() {
      await bff.close();
      redis.disconnect();
    },
  };
}
