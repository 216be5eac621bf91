import { startStack, type Stack } from './support/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

test('smoke', async () => {
  const b = stack.browser();
  const page = await b.login(stack.bff.url, { returnTo: '/after' });
  console.log(page.history, page.status, page.text.slice(0, 300));
  const user = await b.go(`${stack.bff.url}/bff/user`, { headers: { 'x-csrf': '1' } });
  console.log(user.status, user.text);
  const api = await b.go(`${stack.bff.url}/api/things?x=1`, { headers: { 'x-csrf': '1' } });
  console.log(api.status, api.text, stack.upstream.requests.at(-1)?.headers);
  console.log(stack.bff.logs.slice(-5).join(''));
});
