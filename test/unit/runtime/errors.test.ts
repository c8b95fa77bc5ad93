import { describe, expect, it } from '@jest/globals';
import { callHook, causeOf, httpStatusOf, logRetry } from '../../../src/runtime/errors.js';

describe('httpStatusOf', () => {
  it.each<[string, unknown, number | undefined]>([
    ['an API error with a numeric code', Object.assign(new Error('conflict'), { code: 409 }), 409],
    ['a network error (string code)', Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), undefined],
    ['not an object', 'boom', undefined],
  ])('%s', (_label, err, expected) => {
    expect(httpStatusOf(err)).toBe(expected);
  });
});

describe('callHook', () => {
  it('drops what a faulty hook throws', () => {
    expect(() => {
      callHook(() => {
        throw new Error('faulty');
      });
    }).not.toThrow();
  });
});

describe('causeOf', () => {
  it('names the error and its causes on one line, each text once', () => {
    const root = new Error('connect ECONNREFUSED 127.0.0.1:6443');
    const wrapped = new Error('apply env of prod/api: connect ECONNREFUSED 127.0.0.1:6443', { cause: root });
    expect(causeOf(wrapped)).toBe('apply env of prod/api: connect ECONNREFUSED 127.0.0.1:6443');
    expect(causeOf(new Error('status write refused', { cause: new Error('HTTP 409') }))).toBe(
      'status write refused ← HTTP 409',
    );
    expect(causeOf('a thrown string')).toBe('a thrown string');
  });

  it("tells an API error by its status and the API server's message, on one line", () => {
    const body = JSON.stringify({
      kind: 'Status',
      message: 'deployments.apps is forbidden: User "sa" cannot list resource "deployments"',
    });
    const apiError = Object.assign(
      new Error(`HTTP-Code: 403\nMessage: Unknown API Status Code!\nBody: ${body}\nHeaders: {}`),
      { code: 403, body },
    );
    expect(causeOf(apiError)).toBe(
      'HTTP 403: deployments.apps is forbidden: User "sa" cannot list resource "deployments"',
    );
    expect(causeOf(new Error('line one\nline two'))).toBe('line one line two');
  });
});

describe('logRetry', () => {
  it('writes one line with the cause at the given level, and the stack only at debug', () => {
    const records: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
    const at =
      (level: string) =>
      (fields: object, message: string): void => {
        records.push({ level, fields: fields as Record<string, unknown>, message });
      };
    const err = new Error('HTTP 500');
    logRetry(
      { error: at('error'), debug: at('debug') },
      'error',
      { policy: 'prod/api' },
      'reconcile failed; retrying with backoff',
      err,
    );
    expect(records).toEqual([
      {
        level: 'error',
        fields: { policy: 'prod/api', error: 'HTTP 500' },
        message: 'reconcile failed; retrying with backoff',
      },
      {
        level: 'debug',
        fields: { policy: 'prod/api', err },
        message: 'reconcile failed; retrying with backoff: stack',
      },
    ]);
  });
});
