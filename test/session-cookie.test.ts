import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { sessionCookie } from '../src/http/session-cookie.js';

const cookie = sessionCookie(['first-secret-0123456789abcdef0123', 'older-secret-0123456789abcdef0123']);

function setCookies(write: (res: ServerResponse) => void): string[] {
  const res = new ServerResponse(new IncomingMessage(new Socket()));
  write(res);
  return ([] as string[]).concat((res.getHeader('set-cookie') as string[] | string | undefined) ?? []);
}

test('the name carries the __Host- prefix only on secure requests', () => {
  expect(cookie.name(true)).toBe('__Host-coatcheck');
  expect(cookie.name(false)).toBe('coatcheck');
});

test.each([true, false])('secure %p: a set cookie reads back and opens to the session id', (secure) => {
  const [line] = setCookies((res) => cookie.set(res, secure, 'session-id', 60_000));
  expect(line).toMatch(/; Max-Age=60; Path=\/; HttpOnly/);
  expect(line).toMatch(/; SameSite=Strict/);
  expect(/; Secure/.test(line!)).toBe(secure);
  const pair = line!.split(';', 1)[0]!;
  expect(cookie.open(cookie.read(`other=1; ${pair}`, secure))).toBe('session-id');
  // Read only under the name for this request's scheme.
  expect(cookie.read(pair, !secure)).toBeUndefined();
});

test('a value not signed by one of the secrets does not open', () => {
  expect(cookie.open('session-id.forged')).toBeUndefined();
  expect(cookie.open(undefined)).toBeUndefined();
});

test('clear expires the cookie under the name for the scheme', () => {
  const [line] = setCookies((res) => cookie.clear(res, true));
  expect(line).toMatch(
    /^__Host-coatcheck=; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure/,
  );
});
