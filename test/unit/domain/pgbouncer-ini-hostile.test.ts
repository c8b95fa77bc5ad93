import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { PGBOUNCER_MAX_INT, readPgbouncerSettings, setPgbouncerSettings } from '../../../src/domain/pgbouncer-ini.js';

// Hostile pgbouncer.ini text: values that are not plain ASCII decimals (bytes that were not UTF-8
// and became U+FFFD when the ConfigMap was written, look-alike digits, invisible characters) and
// owned keys set twice. Both are refused by the reader and by the editor, and nothing is written.

const OWNED = ['default_pool_size', 'max_client_conn'] as const;
// U+FFFD, NUL and other control characters refuse the whole text (InvalidText), before any value.
const utf8 = new TextDecoder('utf-8'); // non-fatal: invalid sequences become U+FFFD, as in a ConfigMap
const iniWith = (lines: readonly string[]): string =>
  ['[databases]', 'app = host=db', '', '[pgbouncer]', 'listen_port = 6432', ...lines, ''].join('\n');

describe('pgbouncer.ini: values that are not plain ASCII integers are refused', () => {
  const hostile: readonly (readonly [string, string])[] = [
    ['U+FFFD (an invalid UTF-8 byte)', '20\uFFFD'],
    ['only U+FFFD', '\uFFFD'],
    ['a lone surrogate', '2\uD8000'],
    ['Arabic-Indic digits', '\u0662\u0660'],
    ['fullwidth digits', '\uFF12\uFF10'],
    ['a zero-width space inside', '2\u200B0'],
    ['a trailing no-break space (not whitespace to PgBouncer)', '20\u00A0'],
    ['a leading no-break space', '\u00A020'],
    ['a NUL byte', '20\u0000'],
    ['a superscript digit', '2\u00B2'],
  ];

  it.each(hostile)('%s', (_name, value) => {
    for (const key of OWNED) {
      const text = iniWith([`${key} = ${value}`]);
      const read = readPgbouncerSettings(text, [...OWNED]);
      // InvalidText: the whole file is refused (U+FFFD, NUL, …); UnparsableValue: the value is.
      expect(read.ok ? 'read' : read.reason).toMatch(/^(UnparsableValue|InvalidText)$/);
      const edit = setPgbouncerSettings(text, new Map([[key, 10]]));
      expect(edit.ok ? 'edited' : edit.reason).toBe(read.ok ? 'read' : read.reason);
      expect('text' in edit).toBe(false);
    }
  });

  it('any bytes as a value: read only when they are a plain ASCII decimal in range; the editor agrees', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...OWNED),
        fc.oneof(
          fc.uint8Array({ maxLength: 12 }),
          fc.stringMatching(/^[0-9]{1,4}$/).map((s) => new TextEncoder().encode(s)),
          fc
            .tuple(fc.nat({ max: 999 }), fc.uint8Array({ minLength: 1, maxLength: 3 }))
            .map(([n, b]) => new Uint8Array([...new TextEncoder().encode(String(n)), ...b])),
        ),
        (key, bytes) => {
          const value = utf8.decode(bytes);
          fc.pre(!/[\n\r]/.test(value)); // one line
          const text = iniWith([`${key} = ${value}`]);
          const read = readPgbouncerSettings(text, [key]);
          const trimmed = value.replace(/^[ \t\v\f]+|[ \t\v\f]+$/g, '');
          const plain = /^(?:0|[1-9][0-9]*)$/.test(trimmed) && Number(trimmed) <= PGBOUNCER_MAX_INT;
          if (plain) {
            expect(read).toEqual({ ok: true, values: new Map([[key, Number(trimmed)]]) });
          } else if (trimmed === '' || /^[ \t\v\f]*$/.test(value)) {
            expect(read.ok).toBe(false);
          } else {
            expect(read.ok ? 'read' : read.reason).toMatch(/^(UnparsableValue|InvalidText)$/);
          }
          const edit = setPgbouncerSettings(text, new Map([[key, 7]]));
          expect(edit.ok).toBe(read.ok);
          if (!read.ok && !edit.ok) expect(edit.reason).toBe(read.reason);
          // A number never comes from text that holds anything but ASCII digits.
          if (read.ok) expect(/^[0-9]+$/.test(trimmed)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('pgbouncer.ini: an owned key set twice is refused, whatever its spelling and values', () => {
  const spelling = (key: string): fc.Arbitrary<string> =>
    fc.constantFrom(
      key,
      key.toUpperCase(),
      key.replace(/(^|_)([a-z])/g, (m) => m.toUpperCase()),
    );
  const ws = fc.constantFrom('', ' ', '\t', ' \t ');

  it('DuplicateKey from the reader and the editor, which writes nothing', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...OWNED).chain((key) => fc.tuple(fc.constant(key), spelling(key), spelling(key))),
        ws,
        ws,
        fc.nat({ max: 5000 }),
        fc.nat({ max: 5000 }),
        fc.array(
          fc.constantFrom(
            '; comment',
            '# comment',
            '',
            'listen_addr = 127.0.0.1',
            '%include extra.ini',
            'auth_type = md5',
          ),
          { maxLength: 4 },
        ),
        ([key, first, second], a, b, v1, v2, between) => {
          const text = iniWith([`${first}${a}=${b}${v1}`, ...between, `${second}${b}=${a}${v2}`]);
          expect(readPgbouncerSettings(text, [...OWNED])).toMatchObject({ ok: false, reason: 'DuplicateKey' });
          const edit = setPgbouncerSettings(text, new Map([[key, 11]]));
          expect(edit).toMatchObject({ ok: false, reason: 'DuplicateKey' });
          expect('text' in edit).toBe(false);
        },
      ),
      { numRuns: 500 },
    );
  });
});
