import { describe, expect, it } from '@jest/globals';
import { authFromSecretData, requestOptions } from '../../../src/adapters/prometheus-auth.js';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const data = (values: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(values).map(([k, v]) => [k, b64(v)]));
const WHERE = 'secret prom-auth (spec.prometheus.authSecretRef)';

describe('authFromSecretData', () => {
  it('bearer token (trimmed: a trailing newline from `echo` is common)', () => {
    expect(authFromSecretData(data({ bearerToken: 's3cr3t-token\n' }), WHERE)).toEqual({
      ok: true,
      auth: { bearerToken: 's3cr3t-token' },
    });
  });

  it('basic auth', () => {
    expect(authFromSecretData(data({ username: 'poolpilot', password: 'pa:ss word' }), WHERE)).toEqual({
      ok: true,
      auth: { basic: { username: 'poolpilot', password: 'pa:ss word' } },
    });
  });

  it('TLS client certificate with a CA, alone or with a token', () => {
    expect(authFromSecretData(data({ 'tls.crt': 'CERT', 'tls.key': 'KEY', 'ca.crt': 'CA' }), WHERE)).toEqual({
      ok: true,
      auth: { tls: { ca: 'CA', cert: 'CERT', key: 'KEY' } },
    });
    expect(authFromSecretData(data({ 'ca.crt': 'CA', bearerToken: 't' }), WHERE)).toEqual({
      ok: true,
      auth: { bearerToken: 't', tls: { ca: 'CA' } },
    });
  });

  const refused: readonly (readonly [string, Record<string, string> | undefined, string])[] = [
    [
      'no known key',
      { token: b64('x') },
      'holds none of the keys bearerToken, username, password, ca.crt, tls.crt, tls.key',
    ],
    ['no data at all', undefined, 'holds none of the keys'],
    [
      'bearer and basic',
      data({ bearerToken: 't', username: 'u', password: 'p' }),
      'set bearerToken or username + password, not both',
    ],
    ['username without password', data({ username: 'u' }), 'basic auth needs both username and password'],
    [
      'a line break inside the token (header injection)',
      data({ bearerToken: 'a\r\nX-Evil: 1' }),
      'bearerToken must be non-empty text without control characters',
    ],
    ['an empty token', data({ bearerToken: '  \n' }), 'bearerToken must be non-empty'],
    ['a colon in the username', data({ username: 'a:b', password: 'p' }), 'username must not contain ":"'],
    [
      'a control character in the password',
      data({ username: 'u', password: 'p\u0000' }),
      'password must not contain control characters',
    ],
    ['a certificate without its key', data({ 'tls.crt': 'CERT' }), 'needs both tls.crt and tls.key'],
    [
      'a value that is not UTF-8',
      { bearerToken: Buffer.from([0xff, 0xfe, 0x41]).toString('base64') },
      'key bearerToken is not UTF-8 text',
    ],
  ];
  it.each(refused)('refuses %s, naming the Secret and never a value', (_name, raw, fragment) => {
    const result = authFromSecretData(raw, WHERE);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.message).toContain(WHERE);
      expect(result.message).toContain(fragment);
      for (const secret of ['a\r\nX-Evil', 'p\u0000', 'CERT']) expect(result.message).not.toContain(secret);
    }
  });
});

describe('requestOptions', () => {
  it('no auth: no headers, no agent', () => {
    expect(requestOptions(undefined)).toEqual({ headers: {} });
  });

  it('bearer and basic become an Authorization header', () => {
    expect(requestOptions({ bearerToken: 'tok' })).toEqual({ headers: { Authorization: 'Bearer tok' } });
    expect(requestOptions({ basic: { username: 'u', password: 'p:w' } })).toEqual({
      headers: { Authorization: `Basic ${b64('u:p:w')}` },
    });
  });

  it('TLS material becomes an https agent of its own', () => {
    const options = requestOptions({ tls: { ca: 'CA' } });
    expect(options.httpsAgent?.options.ca).toBe('CA');
  });
});
