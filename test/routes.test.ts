import { compileRoutes } from '../src/proxy/routes.js';

const match = compileRoutes([
  { path: '/', target: 'http://upstream:1/base/' },
  { path: '/api', target: 'http://api:2/v1' },
  { path: '/api/admin', target: 'https://admin:3' },
]);

test.each([
  ['/api', 'http://api:2', '/v1', ''],
  ['/api/x?q=1', 'http://api:2', '/v1', '/x?q=1'],
  ['/api?q=1', 'http://api:2', '/v1', '?q=1'],
  ['/api/admin/users', 'https://admin:3', '', '/users'],
  ['/apix', 'http://upstream:1', '/base', '/apix'],
  ['/anything', 'http://upstream:1', '/base', '/anything'],
])('%s goes to %s with base %s and rest %s', (path, origin, basePath, rest) => {
  const m = match(path)!;
  expect([m.route.origin, m.route.basePath, m.rest]).toEqual([origin, basePath, rest]);
});

test.each(['/bff', '/bff/login', '/bff/user?x=1', '/bff?x'])('a catch-all route never takes %s', (path) => {
  expect(match(path)).toBeUndefined();
});

test('/bffx is an ordinary path', () => {
  expect(match('/bffx')?.rest).toBe('/bffx');
});
