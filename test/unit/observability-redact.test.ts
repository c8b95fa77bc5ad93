import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { REDACT_PATHS } from '../../src/observability/logger.js';

// What the operator's logger must never print, however a credential reaches a log call.
function capture(log: (logger: pino.Logger) => void): string {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString();
      done();
    },
  });
  const logger = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  log(logger);
  return out;
}

const SECRETS = ['tok-3f9a', 'hunter2', '-----BEGIN PRIVATE KEY-----'];

describe('logger redaction', () => {
  it.each([
    ['an Authorization header', { headers: { Authorization: 'Bearer tok-3f9a' } }],
    [
      'a lower-case authorization header below a request',
      { request: { headers: { authorization: 'Basic aHVudGVyMg==hunter2' } } },
    ],
    [
      'an axios error config',
      {
        err: {
          message: 'fail',
          config: { headers: { Authorization: 'Bearer tok-3f9a' }, auth: { username: 'u', password: 'hunter2' } },
        },
      },
    ],
    [
      'parsed credentials',
      { policy: 'a/b', auth: { bearerToken: 'tok-3f9a', basic: { username: 'u', password: 'hunter2' } } },
    ],
    ['nested credentials', { prometheus: { auth: { tls: { key: '-----BEGIN PRIVATE KEY-----' } } } }],
    [
      'Secret data keys',
      { secret: { 'tls.key': '-----BEGIN PRIVATE KEY-----', password: 'hunter2', bearerToken: 'tok-3f9a' } },
    ],
    ['top-level fields', { token: 'tok-3f9a', password: 'hunter2' }],
    [
      'a raw request header dump',
      { err: { request: { _header: 'GET / HTTP/1.1\r\nAuthorization: Bearer tok-3f9a\r\n' } } },
    ],
  ])('%s', (_name, fields) => {
    const out = capture((logger) => {
      logger.info(fields, 'message');
    });
    for (const secret of SECRETS) expect(out).not.toContain(secret);
    expect(out).toContain('[redacted]');
  });
});
