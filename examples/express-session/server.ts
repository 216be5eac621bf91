import { createExampleApp } from './app.js';

// Runs the example with these variables set, once compiled with the rest of your TypeScript (or
// with a loader such as tsx). In this repository, test/example-express-session.test.ts runs it.

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const publicUrl = required('PUBLIC_URL');
const { app, close } = await createExampleApp({
  issuer: required('ISSUER'),
  clientId: required('CLIENT_ID'),
  clientSecret: required('CLIENT_SECRET'),
  publicUrl,
  sessionSecret: required('SESSION_SECRET'),
  cookieSecret: required('COOKIE_SECRET'),
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  apiUrl: required('API_URL'),
});
const server = app.listen(Number(new URL(publicUrl).port || 3000), () =>
  console.log(`listening on ${publicUrl}`),
);
process.once('SIGTERM', () => server.close(() => void close()));
