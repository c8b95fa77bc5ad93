import { describe, expect, it } from '@jest/globals';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import fc from 'fast-check';
import { PrometheusClient } from '../../../src/adapters/prometheus.js';

// Hostile Prometheus replies at the byte level: bodies that are not UTF-8 (decoded the way Node
// decodes a text reply: invalid sequences become U+FFFD), look-alike digits, and garbage spliced
// into well-formed replies. The adapter never throws past itself and never makes a number of them.

const EVAL_TS = 1_790_000_000.5;
const NOW = new Date(EVAL_TS * 1000);
const utf8 = new TextDecoder('utf-8');
const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

function clientReturning(body: () => string, status = 200): PrometheusClient {
  const http: AxiosInstance = axios.create({
    adapter: (config): Promise<AxiosResponse> =>
      Promise.resolve({ data: body(), status, statusText: '', headers: {}, config, request: {} }),
  });
  return new PrometheusClient({ baseUrl: 'http://prometheus.test:9090', timeoutMs: 1000, now: () => NOW, http });
}

const reply = (value: string): string =>
  JSON.stringify({
    status: 'success',
    data: { resultType: 'vector', result: [{ metric: { pod: 'api-1' }, value: [EVAL_TS, value] }] },
  });
/** The sample-value grammar Prometheus writes (ASCII only). */
const ASCII_FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

describe('PrometheusClient: hostile bytes and look-alike numbers', () => {
  it.each([
    ['U+FFFD (a byte that was not UTF-8)', '42\uFFFD'],
    ['only U+FFFD', '\uFFFD'],
    ['a lone surrogate', '4\uD8002'],
    ['Arabic-Indic digits', '\u0664\u0662'],
    ['fullwidth digits', '\uFF14\uFF12'],
    ['a zero-width space inside', '4\u200B2'],
    ['a no-break space around', '\u00A042\u00A0'],
    ['a NUL byte', '42\u0000'],
    ['a superscript exponent', '1e\u00B2'],
  ])('%s: QueryFailed, no number', async (_name, value) => {
    const sample = await clientReturning(() => reply(value)).utilization({ expr: 'q' }, 60_000);
    expect(sample).toMatchObject({ valid: false, problem: 'QueryFailed' });
  });

  it('a sample value made of any bytes yields a number only when it is an ASCII float literal', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 16 }),
          fc
            .tuple(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.uint8Array({ maxLength: 3 }))
            .map(([d, b]) => new Uint8Array([...encode(String(d)), ...b])),
        ),
        async (bytes) => {
          const value = utf8.decode(bytes);
          const sample = await clientReturning(() => reply(value)).utilization({ expr: 'q' }, 60_000);
          if (sample.valid) {
            expect(ASCII_FLOAT.test(value)).toBe(true);
            expect(sample.percent).toBe(Number(value));
            expect(Number.isFinite(sample.percent)).toBe(true);
          } else if (!ASCII_FLOAT.test(value) && !/^[+-]?(nan|inf(inity)?)$/i.test(value)) {
            expect(sample.problem).toBe('QueryFailed');
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('random bytes spliced into a well-formed reply: never rejects; a number only from a well-formed reply', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ noNaN: true, noDefaultInfinity: true, min: 0, max: 100 }),
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 8 }),
        fc.constantFrom(200, 500),
        async (percent, at, junk, status) => {
          const good = encode(reply(String(percent)));
          const cut = at % (good.length + 1);
          const text = utf8.decode(new Uint8Array([...good.slice(0, cut), ...junk, ...good.slice(cut)]));
          const sample = await clientReturning(() => text, status).utilization({ expr: 'q' }, 60_000);
          if (sample.valid) {
            // Only if the splice still left a Prometheus reply whose value is an ASCII literal.
            const parsed = JSON.parse(text) as { data: { result: [{ value: [number, string] }] } };
            const literal = parsed.data.result[0].value[1];
            expect(ASCII_FLOAT.test(literal)).toBe(true);
            expect(sample.percent).toBe(Number(literal));
            expect(status).toBe(200);
          } else {
            expect(sample.message.length).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('whole bodies of random bytes: never rejects, never valid', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 256 }), async (bytes) => {
        const sample = await clientReturning(() => utf8.decode(bytes)).utilization({ expr: 'q' }, 60_000);
        expect(sample.valid).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('an HTTP layer that throws anything (not an Error): QueryFailed, not a rejection', async () => {
    await fc.assert(
      fc.asyncProperty(fc.anything(), async (thrown) => {
        // The point is a rejection with something that is not an Error.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        const http: AxiosInstance = axios.create({ adapter: () => Promise.reject(thrown) });
        const sample = await new PrometheusClient({
          baseUrl: 'http://p:9090',
          timeoutMs: 1000,
          now: () => NOW,
          http,
        }).utilization({ expr: 'q' }, 60_000);
        expect(sample).toMatchObject({ valid: false, problem: 'QueryFailed' });
      }),
      { numRuns: 200 },
    );
  });
});
