import { SignJWT, generateKeyPair, jwtVerify, type CryptoKey } from 'jose';
import { createDpopVerifier, type DpopRequest } from '../src/demo/dpop-verifier.js';
import { DpopSigner, newDpopKey } from '../src/oidc/dpop.js';

const HTU = 'http://127.0.0.1:5000/v1/orders';
let issuerKeys: { publicKey: CryptoKey; privateKey: CryptoKey };
let signer: DpopSigner;
let token: string;

/** An access token bound to `jkt`, signed by a key of the test's own: the verifier checks it like an IdP's. */
const accessToken = (jkt: string): Promise<string> =>
  new SignJWT({ sub: 'alice', cnf: { jkt } })
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(issuerKeys.privateKey);

beforeAll(async () => {
  issuerKeys = await generateKeyPair('ES256');
  signer = new DpopSigner(await newDpopKey('ES256'));
  token = await accessToken(signer.jkt);
});

const verifier = (nonce?: string) =>
  createDpopVerifier({
    verifyAccessToken: async (t) => (await jwtVerify(t, issuerKeys.publicKey)).payload,
    ...(nonce ? { nonce: () => nonce } : {}),
  });

const req = (proof: DpopRequest['proof'], over: Partial<DpopRequest> = {}): DpopRequest => ({
  method: 'GET',
  htu: HTU,
  authorization: `DPoP ${token}`,
  proof,
  ...over,
});

const proof = (over: Partial<Parameters<DpopSigner['proof']>[0]> = {}, nowMs?: number): string =>
  signer.proof({ htm: 'GET', htu: HTU, accessToken: token, ...over }, nowMs);

test('a proof that holds is accepted, with the key it proved', async () => {
  const verdict = await verifier()(req(proof()));
  expect(verdict).toMatchObject({ ok: true, jkt: signer.jkt, accessToken: { sub: 'alice' } });
});

test.each<[string, () => Promise<DpopRequest> | DpopRequest, RegExp]>([
  ['a bearer token', () => req(proof(), { authorization: `Bearer ${token}` }), /^not a DPoP token$/],
  ['no proof', () => req(undefined), /^no proof$/],
  ['two proofs', () => req([proof(), proof()]), /^no proof$/],
  ['a tampered signature', () => req(`${proof().slice(0, -4)}AAAA`), /^bad proof: signature/],
  ['another method (htm)', () => req(proof({ htm: 'POST' })), /^htm POST$/],
  ['another URL (htu)', () => req(proof({ htu: `${HTU}/7` })), /^htu /],
  ['another token (ath)', () => req(proof({ accessToken: 'other' })), /^ath$/],
  ['an old proof (iat)', () => req(proof({}, Date.now() - 5 * 60_000)), /^bad proof: .*"iat"/],
  ['a proof from the future (iat)', () => req(proof({}, Date.now() + 5 * 60_000)), /^bad proof: .*"iat"/],
  [
    "a proof by another key than the token's cnf.jkt",
    async () =>
      req(new DpopSigner(await newDpopKey('ES256')).proof({ htm: 'GET', htu: HTU, accessToken: token })),
    /^cnf\.jkt does not match the proof key$/,
  ],
])('refused: %s', async (_name, make, reason) => {
  const verdict = await verifier()(await make());
  expect(verdict.ok).toBe(false);
  expect(verdict.ok ? '' : verdict.reason).toMatch(reason);
});

test('a proof sent twice is refused the second time (jti)', async () => {
  const verify = verifier();
  const once = proof();
  expect((await verify(req(once))).ok).toBe(true);
  expect(await verify(req(once))).toMatchObject({ ok: false, reason: 'jti replayed' });
});

test('a server that wants a nonce challenges a proof without it, then accepts one with it', async () => {
  const verify = verifier('n-1');
  expect(await verify(req(proof()))).toMatchObject({
    ok: false,
    reason: 'nonce',
    nonce: 'n-1',
    challenge: expect.stringMatching(/^DPoP error="use_dpop_nonce"/),
  });
  expect((await verify(req(proof({ nonce: 'n-1' })))).ok).toBe(true);
});
