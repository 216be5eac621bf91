// The BFF most tutorials show: express-session + connect-redis + http-proxy-middleware, attaching
// the session's token. It has no login of its own here: POST /seed stands in for the callback and
// stores a real access token (from a real login) in a real Redis-backed session.
import { RedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { Redis } from 'ioredis';

const app = express();
app.use(
  session({
    store: new RedisStore({ client: new Redis(process.env.REDIS_URL), prefix: 'naive:' }),
    secret: process.env.SESSION_SECRET,
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'strict' },
  }),
);
app.post('/seed', express.json(), (req, res) => {
  req.session.accessToken = req.body.accessToken;
  res.sendStatus(204);
});
app.use(
  '/api',
  (req, res, next) => {
    if (req.get('x-csrf') !== '1') return res.status(403).json({ error: 'csrf' });
    if (!req.session.accessToken) return res.status(401).json({ error: 'unauthenticated' });
    next();
  },
  createProxyMiddleware({
    target: process.env.TARGET,
    on: {
      proxyReq: (proxyReq, req) => proxyReq.setHeader('authorization', `Bearer ${req.session.accessToken}`),
    },
  }),
);
app.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
