import { createPrivateKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import { startStack } from './support/stack.js';
import { advanceToRefresh, csrf, loggedIn } from './support/session.js';

/** Logs in and calls the API: the code exchange is where client authentication happens. */
async function loginAndCall(
  env: Record<string, string>,
  client: Record<string, unknown>,
  jwks?: { keys: unknown[] },
): Promise<void> {
  // The client's public keys are published at a jwks_uri, as real deployments do; the IdP fetches them.
  let keyServer: Server | undefined;
  if (jwks) {
    keyServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((resolve) => keyServer!.listen(0, '127.0.0.1', resolve));
    client = {
      ...client,
      jwks_uri: `http://127.0.0.1:${(keyServer.address() as { port: number }).port}/jwks`,
    };
  }
  const stack = await startStack({ env, client });
  try {
    const b = await loggedIn(stack.bff);
    const api = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
    expect(api.status).toBe(200);
    // A refresh authenticates the client too.
    await advanceToRefresh(stack, b);
    expect((await b.go(`${stack.bff.url}/api/y`, { headers: csrf })).status).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(1);
  } finally {
    await stack.close();
    keyServer?.closeAllConnections();
    keyServer?.close();
  }
}

test('client_secret_post', async () => {
  await loginAndCall(
    { BFF_CLIENT_AUTH_METHOD: 'client_secret_post' },
    { token_endpoint_auth_method: 'client_secret_post' },
  );
});

test.each(['RS256', 'ES256'])('private_key_jwt with a %s private JWK', async (alg) => {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `key-${alg}`;
  await loginAndCall(
    {
      BFF_CLIENT_AUTH_METHOD: 'private_key_jwt',
      BFF_CLIENT_SECRET: '',
      BFF_CLIENT_PRIVATE_KEY: JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg }),
    },
    {
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: alg,
      client_secret: undefined,
    },
    { keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] },
  );
});

test('private_key_jwt with a PKCS#1 PEM key', async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const pem = createPrivateKey({ key: await exportJWK(privateKey), format: 'jwk' })
    .export({ format: 'pem', type: 'pkcs1' })
    .toString();
  await loginAndCall(
    { BFF_CLIENT_AUTH_METHOD: 'private_key_jwt', BFF_CLIENT_SECRET: '', BFF_CLIENT_PRIVATE_KEY: pem },
    {
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'RS256',
      client_secret: undefined,
    },
    { keys: [{ ...(await exportJWK(publicKey)), use: 'sig' }] },
  );
});
