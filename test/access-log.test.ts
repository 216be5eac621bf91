import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { logRequest } from '../src/http/request-log.js';
import { createAccessLogger, createLogger } from '../src/log.js';

// The access line is built by hand (request-log.ts) rather than by pino: it must stay the line
// pino writes, field for field, and stay valid JSON whatever the path holds.

function capture(level = 'info') {
  const lines: string[] = [];
  const log = createLogger(
    level,
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    }),
  );
  return { log, access: createAccessLogger(log), lines };
}

function request(url: string, headers: Record<string, string> = {}) {
  const req = { method: 'GET', url, headers } as unknown as IncomingMessage;
  const res = Object.assign(new EventEmitter(), {
    statusCode: 200,
    writableFinished: true,
    setHeader() {},
  }) as unknown as ServerResponse;
  return { req, res };
}

test('the access line has the fields, order and format of a pino line', () => {
  const { log, access, lines } = capture();
  const { req, res } = request('/api/items?code=secret', { 'x-request-id': 'req-1' });
  logRequest(access, req, res);
  res.emit('close');
  log.info({ reqId: 'req-1', method: 'GET', path: '/api/items', status: 200, ms: 0 }, 'request');

  const [ours, pinos] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(Object.keys(ours!)).toEqual(Object.keys(pinos!));
  expect(ours).toMatchObject({
    level: 30,
    service: 'coatcheck',
    reqId: 'req-1',
    method: 'GET',
    path: '/api/items',
    status: 200,
    msg: 'request',
  });
  expect(new Date(ours!.time as string).toISOString()).toBe(ours!.time);
  expect(Math.abs(Date.parse(ours!.time as string) - Date.now())).toBeLessThan(5000);
  expect(lines[0]).not.toContain('secret');
});

test('a path with quotes, backslashes, control and non-ASCII characters stays one JSON line', () => {
  const { access, lines } = capture();
  const path = '/api/a"b\\c\u0001d\u2028é';
  const { req, res } = request(path);
  logRequest(access, req, res);
  res.emit('close');
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({ path });
});

test('an answer cut short is marked aborted', () => {
  const { access, lines } = capture();
  const { req, res } = request('/api/x');
  (res as unknown as { writableFinished: boolean }).writableFinished = false;
  logRequest(access, req, res);
  res.emit('close');
  expect(JSON.parse(lines[0]!)).toMatchObject({ aborted: true });
});

test('nothing is written below the level', () => {
  const { access, lines } = capture('warn');
  const { req, res } = request('/api/x');
  logRequest(access, req, res);
  res.emit('close');
  expect(lines).toEqual([]);
});
