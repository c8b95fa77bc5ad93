import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { readPoolConfig, setPoolConfig } from '../../../src/domain/pool-config-file.js';

const OWNED = ['DB_POOL_SIZE', 'DB_MAX_OVERFLOW'];

describe('readPoolConfig', () => {
  it.each<[string, string, Record<string, number>]>([
    ['empty text', '', {}],
    ['owned keys', 'DB_POOL_SIZE=16\nDB_MAX_OVERFLOW=32\n', { DB_POOL_SIZE: 16, DB_MAX_OVERFLOW: 32 }],
    [
      'spaces, comments, CRLF, other keys',
      '# pools\r\n  DB_POOL_SIZE = 8 \r\n\r\nDB_POOL_TIMEOUT=2.5\r\n',
      { DB_POOL_SIZE: 8 },
    ],
    ['an owned key missing', 'REDIS_MAX_CONNECTIONS=50', {}],
  ])('%s', (_, text, values) => {
    const read = readPoolConfig(text, OWNED);
    expect(read).toEqual({ ok: true, values: new Map(Object.entries(values)) });
  });

  it.each<[string, string, RegExp]>([
    ['a line without =', 'DB_POOL_SIZE 16', /line 1 "DB_POOL_SIZE 16" is not KEY=VALUE/],
    ['a key that is no env name', 'db-pool=3', /line 1 .* is not KEY=VALUE/],
    ['an owned key twice', 'DB_POOL_SIZE=1\n\nDB_POOL_SIZE=2', /line 3: DB_POOL_SIZE is set twice; keep one line/],
    ['an owned key not an integer', 'DB_MAX_OVERFLOW=2.5', /line 1: DB_MAX_OVERFLOW="2.5" is not a whole number/],
    ['an owned key in octal', 'DB_MAX_OVERFLOW=010', /not a whole number/],
    ['an owned key beyond int32', 'DB_POOL_SIZE=2147483648', /not a whole number/],
    ['an inline comment', 'DB_POOL_SIZE=4 # four', /not a whole number/],
  ])('refuses %s, naming the line', (_, text, message) => {
    const read = readPoolConfig(text, OWNED);
    expect(read.ok).toBe(false);
    if (!read.ok) expect(read.message).toMatch(message);
  });

  it('leaves what it does not own to the app: an unknown key with any value is accepted', () => {
    expect(readPoolConfig('FEATURE=on\nDB_POOL_TIMEOUT=2.5', OWNED)).toEqual({ ok: true, values: new Map() });
  });
});

describe('setPoolConfig', () => {
  it.each<[string, string, Record<string, number>, string]>([
    [
      'replaces a value in place',
      'DB_POOL_SIZE=10\nDB_MAX_OVERFLOW=20\n',
      { DB_POOL_SIZE: 16 },
      'DB_POOL_SIZE=16\nDB_MAX_OVERFLOW=20\n',
    ],
    ['keeps spacing and comments', '# x\n DB_POOL_SIZE = 10  \n', { DB_POOL_SIZE: 9 }, '# x\n DB_POOL_SIZE = 9  \n'],
    ['appends a missing key', 'DB_POOL_TIMEOUT=2', { DB_POOL_SIZE: 4 }, 'DB_POOL_TIMEOUT=2\nDB_POOL_SIZE=4\n'],
    [
      'keeps CRLF',
      'A=1\r\n',
      { DB_POOL_SIZE: 4, DB_MAX_OVERFLOW: 8 },
      'A=1\r\nDB_POOL_SIZE=4\r\nDB_MAX_OVERFLOW=8\r\n',
    ],
    ['writes an empty file', '', { DB_POOL_SIZE: 4 }, 'DB_POOL_SIZE=4\n'],
  ])('%s', (_, text, writes, expected) => {
    expect(setPoolConfig(text, new Map(Object.entries(writes)))).toEqual({ ok: true, text: expected });
  });

  it('refuses what readPoolConfig refuses and edits nothing', () => {
    expect(setPoolConfig('DB_POOL_SIZE=1\nDB_POOL_SIZE=2', new Map([['DB_POOL_SIZE', 3]])).ok).toBe(false);
  });

  it('property: an edit reads back as written and keeps every line it does not own', () => {
    const line = fc.oneof(
      fc.constantFrom('# comment', '', '  ', 'DB_POOL_TIMEOUT=2.5', 'FEATURE = on', 'REDIS_URL=redis://x:6379/0'),
      fc.integer({ min: 0, max: 500 }).map((n) => `DB_POOL_SIZE=${n}`),
    );
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 8 }),
        fc.constantFrom('\n', '\r\n'),
        fc.boolean(),
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 0, max: 1000 }),
        (lines, newline, finalNewline, pool, overflow) => {
          // At most one owned line, as the reader requires.
          let seen = false;
          const kept = lines.filter((l) => !l.startsWith('DB_POOL_SIZE') || (seen ? false : (seen = true)));
          const text = kept.join(newline) + (finalNewline && kept.length > 0 ? newline : '');
          const writes = new Map([
            ['DB_POOL_SIZE', pool],
            ['DB_MAX_OVERFLOW', overflow],
          ]);
          const edited = setPoolConfig(text, writes);
          expect(edited.ok).toBe(true);
          if (!edited.ok) return;
          expect(readPoolConfig(edited.text, OWNED)).toEqual({ ok: true, values: writes });
          const others = (t: string): string[] =>
            t.split(/\r?\n/).filter((l) => !/^\s*DB_(POOL_SIZE|MAX_OVERFLOW)\s*=/.test(l) && l !== '');
          expect(others(edited.text)).toEqual(others(text));
        },
      ),
    );
  });
});
