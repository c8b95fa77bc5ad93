import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import {
  PGBOUNCER_MAX_INT,
  readPgbouncerSettings,
  setPgbouncerSettings,
  type IniEditResult,
  type IniRefusalReason,
} from '../../../src/domain/pgbouncer-ini.js';

const OWNED = ['default_pool_size', 'max_client_conn'] as const;

function set(text: string, entries: Record<string, number>): IniEditResult {
  return setPgbouncerSettings(text, new Map(Object.entries(entries)));
}

function okText(result: IniEditResult): string {
  if (!result.ok) throw new Error(`expected ok, got ${result.reason}: ${result.message}`);
  return result.text;
}

const BASE = [
  '; poolpilot test config',
  '[databases]',
  'app = host=127.0.0.1 port=5432 dbname=app',
  '',
  '[pgbouncer]',
  '# pooler settings',
  'listen_port = 6432',
  'default_pool_size = 20',
  'max_client_conn\t=\t100   ',
  '',
  '; users follow',
  '[users]',
  'app = pool_mode=session',
  '',
].join('\n');

describe('readPgbouncerSettings', () => {
  it('reads owned keys of [pgbouncer]; missing keys are absent; the map uses the caller spelling', () => {
    const result = readPgbouncerSettings(BASE, ['default_pool_size', 'MAX_CLIENT_CONN', 'reserve_pool_size']);
    expect(result).toEqual({
      ok: true,
      values: new Map([
        ['default_pool_size', 20],
        ['MAX_CLIENT_CONN', 100],
      ]),
    });
  });

  it.each([
    ['case-insensitive section and key', '[PgBouncer]\nDefault_Pool_Size = 7\n', 7],
    ['indented key, no spaces around =', '[pgbouncer]\n  default_pool_size=7\n', 7],
    ['tabs and trailing whitespace', '[pgbouncer]\n\tdefault_pool_size\t=\t7 \t\n', 7],
    ['CRLF', '[pgbouncer]\r\ndefault_pool_size = 7\r\n', 7],
    ['header with trailing comment', '[pgbouncer] ; main\ndefault_pool_size = 7', 7],
    ['zero', '[pgbouncer]\ndefault_pool_size = 0\n', 0],
    ['INT_MAX', `[pgbouncer]\ndefault_pool_size = ${PGBOUNCER_MAX_INT}\n`, PGBOUNCER_MAX_INT],
  ])('reads %s', (_name, text, expected) => {
    expect(readPgbouncerSettings(text, ['default_pool_size'])).toEqual({
      ok: true,
      values: new Map([['default_pool_size', expected]]),
    });
  });

  it.each([
    ['in a ; comment', '[pgbouncer]\n; default_pool_size = 5\n'],
    ['in an indented # comment', '[pgbouncer]\n   # default_pool_size = 5\n'],
    ['in another section', '[databases]\ndefault_pool_size = 5\n[pgbouncer]\n'],
    ['before any section', 'default_pool_size = 5\n[pgbouncer]\n'],
    ['as a prefix of another key', '[pgbouncer]\ndefault_pool_size_x = 5\n'],
    ['in a section whose name only resembles pgbouncer', '[ pgbouncer ]\ndefault_pool_size = 5\n[pgbouncer]\n'],
  ])('ignores an owned key %s', (_name, text) => {
    expect(readPgbouncerSettings(text, ['default_pool_size'])).toEqual({ ok: true, values: new Map() });
  });

  it('lets keys that are not owned repeat', () => {
    const text = '[pgbouncer]\nignore_startup_parameters = a\nignore_startup_parameters = b\ndefault_pool_size = 3\n';
    expect(readPgbouncerSettings(text, ['default_pool_size'])).toEqual({
      ok: true,
      values: new Map([['default_pool_size', 3]]),
    });
  });

  it.each<[string, string, IniRefusalReason, RegExp]>([
    ['empty text', '', 'NoPgbouncerSection', /\[pgbouncer\]/],
    ['only other sections', '[databases]\na = host=x\n[users]\n', 'NoPgbouncerSection', /\[pgbouncer\]/],
    [
      'owned key twice',
      '[pgbouncer]\ndefault_pool_size = 1\nx = 1\ndefault_pool_size = 2\n',
      'DuplicateKey',
      /line 4: default_pool_size .* line 2/,
    ],
    [
      'owned key twice, different case',
      '[pgbouncer]\ndefault_pool_size = 1\nDEFAULT_POOL_SIZE = 1\n',
      'DuplicateKey',
      /line 3: DEFAULT_POOL_SIZE/,
    ],
    [
      'second [pgbouncer] section',
      '[pgbouncer]\ndefault_pool_size = 1\n[users]\n[PGBOUNCER]\n',
      'DuplicateKey',
      /line 4: second \[pgbouncer\] section \(first at line 1\)/,
    ],
    [
      'leading zero (octal to pgbouncer)',
      '[pgbouncer]\ndefault_pool_size = 020\n',
      'UnparsableValue',
      /line 2: default_pool_size = "020"/,
    ],
    ['hex', '[pgbouncer]\ndefault_pool_size = 0x14\n', 'UnparsableValue', /line 2/],
    [
      'inline ; comment (pgbouncer has none)',
      '[pgbouncer]\ndefault_pool_size = 20 ; note\n',
      'UnparsableValue',
      /"20 ; note"/,
    ],
    ['inline # comment', '[pgbouncer]\ndefault_pool_size = 20 # note\n', 'UnparsableValue', /line 2/],
    ['negative', '[pgbouncer]\ndefault_pool_size = -1\n', 'UnparsableValue', /line 2/],
    ['plus sign', '[pgbouncer]\ndefault_pool_size = +7\n', 'UnparsableValue', /line 2/],
    ['empty value', '[pgbouncer]\ndefault_pool_size =   \n', 'UnparsableValue', /line 2/],
    ['exponent', '[pgbouncer]\ndefault_pool_size = 1e3\n', 'UnparsableValue', /line 2/],
    ['quoted', '[pgbouncer]\ndefault_pool_size = "20"\n', 'UnparsableValue', /line 2/],
    ['beyond INT_MAX', `[pgbouncer]\ndefault_pool_size = ${PGBOUNCER_MAX_INT + 1}\n`, 'UnparsableValue', /line 2/],
    ['no =', '[pgbouncer]\ndefault_pool_size 20\n', 'UnparsableValue', /line 2: default_pool_size has no '='/],
    ['NUL', '[pgbouncer]\nlisten_addr = a\u0000b\n', 'InvalidText', /line 2, column 16: contains a NUL byte/],
    [
      'U+FFFD',
      '[databases]\napp = dbname=caf\uFFFD\n[pgbouncer]\n',
      'InvalidText',
      /line 2, column 17: contains U\+FFFD/,
    ],
    ['unclosed section header', '[pgbouncer\ndefault_pool_size = 1\n', 'InvalidText', /line 1: .*closing '\]'/],
    [
      'text after a section header',
      '[pgbouncer] default_pool_size = 1\n',
      'InvalidText',
      /line 1: text after the section header/,
    ],
  ])('refuses %s', (_name, text, reason, message) => {
    const result = readPgbouncerSettings(text, ['default_pool_size']);
    expect(result).toMatchObject({ ok: false, reason });
    if (!result.ok) expect(result.message).toMatch(message);
    const edit = set(text, { default_pool_size: 30 });
    expect(edit).toEqual(result);
  });

  it('judges only owned keys: a bad value of a key not asked for is no refusal', () => {
    const text = '[pgbouncer]\nmax_client_conn = 020\nmax_client_conn = lots\ndefault_pool_size = 5\n';
    expect(readPgbouncerSettings(text, ['default_pool_size'])).toEqual({
      ok: true,
      values: new Map([['default_pool_size', 5]]),
    });
  });

  it.each([
    ['bad name', ['default pool']],
    ['empty name', ['']],
    ['same key twice', ['a', 'A']],
  ])('throws RangeError for %s', (_n, keys) => {
    expect(() => readPgbouncerSettings(BASE, keys)).toThrow(RangeError);
  });
});

describe('setPgbouncerSettings', () => {
  it('replaces only the value tokens, keeping spacing, tabs, trailing whitespace and every other line', () => {
    const text = okText(set(BASE, { default_pool_size: 24, max_client_conn: 400 }));
    expect(text).toBe(
      BASE.replace('default_pool_size = 20', 'default_pool_size = 24').replace(
        'max_client_conn\t=\t100   ',
        'max_client_conn\t=\t400   ',
      ),
    );
  });

  it('keeps the key spelling of the existing line', () => {
    expect(okText(set('[PgBouncer]\n  Default_Pool_Size=20\n', { default_pool_size: 3 }))).toBe(
      '[PgBouncer]\n  Default_Pool_Size=3\n',
    );
  });

  it('returns the identical text and changed:false when values already match', () => {
    const result = set(BASE, { default_pool_size: 20, max_client_conn: 100 });
    expect(result).toEqual({ ok: true, text: BASE, changed: false });
  });

  it('appends a missing key after the last setting, before the comments and blank lines that lead to the next section', () => {
    const text = okText(set(BASE, { reserve_pool_size: 5, min_pool_size: 2 }));
    expect(text).toBe(
      BASE.replace(
        'max_client_conn\t=\t100   \n',
        'max_client_conn\t=\t100   \nreserve_pool_size = 5\nmin_pool_size = 2\n',
      ),
    );
  });

  it('appends right after the header of a section without settings', () => {
    const before = '[pgbouncer]\n; nothing yet\n\n[users]\n';
    expect(okText(set(before, { default_pool_size: 9 }))).toBe(
      '[pgbouncer]\ndefault_pool_size = 9\n; nothing yet\n\n[users]\n',
    );
  });

  it('treats an %include line as content of the section (passes it through)', () => {
    const before = '[pgbouncer]\n%include /etc/pgbouncer/extra.ini\n; end\n';
    expect(okText(set(before, { default_pool_size: 9 }))).toBe(
      '[pgbouncer]\n%include /etc/pgbouncer/extra.ini\ndefault_pool_size = 9\n; end\n',
    );
  });

  it('keeps CRLF line endings and uses CRLF for appended lines', () => {
    const before = BASE.replace(/\n/g, '\r\n');
    const text = okText(set(before, { default_pool_size: 24, reserve_pool_size: 1 }));
    expect(text).toBe(
      before
        .replace('default_pool_size = 20\r\n', 'default_pool_size = 24\r\n')
        .replace('100   \r\n', '100   \r\nreserve_pool_size = 1\r\n'),
    );
  });

  it("uses the anchor line's ending in a mixed file", () => {
    expect(okText(set('[pgbouncer]\nlisten_port = 1\r\n\n', { default_pool_size: 2 }))).toBe(
      '[pgbouncer]\nlisten_port = 1\r\ndefault_pool_size = 2\r\n\n',
    );
  });

  it('keeps a missing final newline when appending at the end of the file', () => {
    expect(okText(set('[pgbouncer]\r\nlisten_port = 1', { default_pool_size: 2, max_client_conn: 3 }))).toBe(
      '[pgbouncer]\r\nlisten_port = 1\r\ndefault_pool_size = 2\r\nmax_client_conn = 3',
    );
    expect(okText(set('[pgbouncer]', { default_pool_size: 2 }))).toBe('[pgbouncer]\ndefault_pool_size = 2');
  });

  it('keeps a missing final newline when replacing on the last line', () => {
    expect(okText(set('[pgbouncer]\ndefault_pool_size = 20', { default_pool_size: 21 }))).toBe(
      '[pgbouncer]\ndefault_pool_size = 21',
    );
  });

  it('never touches owned key names in comments, other sections, or connection strings', () => {
    const before =
      '[databases]\ndefault_pool_size = 1\napp = host=x pool_size=5\n[pgbouncer]\n; default_pool_size = 1\n';
    expect(okText(set(before, { default_pool_size: 7 }))).toBe(
      before.replace('[pgbouncer]\n', '[pgbouncer]\ndefault_pool_size = 7\n'),
    );
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, PGBOUNCER_MAX_INT + 1])(
    'throws RangeError for value %p',
    (value) => {
      expect(() => set(BASE, { default_pool_size: value })).toThrow(RangeError);
    },
  );

  it('throws RangeError for keys that collide case-insensitively or are not setting names', () => {
    expect(() => set(BASE, { default_pool_size: 1, DEFAULT_POOL_SIZE: 1 })).toThrow(RangeError);
    expect(() => set(BASE, { 'x\n[users]': 1 })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------
// Fuzz 1: structured ini-ish text whose meaning the generator knows, checked
// against an independent model of the expected refusal or the exact output.

type Piece =
  | { readonly kind: 'header'; readonly text: string; readonly pgbouncer: boolean }
  | {
      readonly kind: 'owned';
      readonly key: string;
      readonly prefix: string;
      readonly value: string;
      readonly suffix: string;
      readonly valid: boolean;
    }
  | { readonly kind: 'other'; readonly text: string; readonly content: boolean };

const ws = fc.stringMatching(/^[ \t]{0,3}$/);
const caseVariant = (key: string): fc.Arbitrary<string> =>
  fc.constantFrom(
    key,
    key.toUpperCase(),
    key.replace(/(^|_)([a-z])/g, (m) => m.toUpperCase()),
  );

const headerPiece: fc.Arbitrary<Piece> = fc
  .tuple(
    ws,
    fc.constantFrom('[pgbouncer]', '[PgBouncer]', '[databases]', '[users]', '[peers]', '[ pgbouncer ]', '[pgbouncer2]'),
    fc.constantFrom('', ' ; note', '\t# x'),
  )
  .map(([lead, name, comment]) => ({
    kind: 'header',
    text: lead + name + comment,
    pgbouncer: name.toLowerCase() === '[pgbouncer]',
  }));

const ownedPiece: fc.Arbitrary<Piece> = fc
  .tuple(
    fc.constantFrom(...OWNED).chain((key) => fc.tuple(fc.constant(key), caseVariant(key))),
    ws,
    ws,
    ws,
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc.integer({ min: 0, max: PGBOUNCER_MAX_INT }).map((n) => ({ value: String(n), valid: true })),
      },
      {
        weight: 1,
        arbitrary: fc
          .constantFrom('020', '0x14', '20 ; c', '-1', '', 'ten', '2147483648')
          .map((value) => ({ value, valid: false })),
      },
    ),
    ws,
  )
  .map(([[key, spelled], lead, before, after, { value, valid }, trail]) => ({
    kind: 'owned',
    key,
    prefix: `${lead}${spelled}${before}=${after}`,
    value,
    suffix: trail,
    valid,
  }));

const otherPiece: fc.Arbitrary<Piece> = fc.oneof(
  fc.constantFrom('', '   ', '\t').map((text) => ({ kind: 'other' as const, text, content: false })),
  fc
    .tuple(
      ws,
      fc.constantFrom(';', '#'),
      fc.constantFrom(' default_pool_size = 1', ' max_client_conn=2', ' [pgbouncer]', ''),
    )
    .map(([lead, mark, body]) => ({ kind: 'other' as const, text: lead + mark + body, content: false })),
  fc
    .tuple(
      ws,
      fc.constantFrom(
        'listen_port = 6432',
        'default_pool_size_x = 5',
        'max_client_connections=1',
        'app = host=127.0.0.1 dbname=app',
        'ignore_startup_parameters = extra_float_digits',
        '%include /etc/x.ini',
      ),
    )
    .map(([lead, body]) => ({ kind: 'other' as const, text: lead + body, content: true })),
);

const pieceText = (p: Piece): string => (p.kind === 'owned' ? p.prefix + p.value + p.suffix : p.text);

const structuredDoc = fc
  .array(
    fc.tuple(
      fc.oneof(
        { weight: 1, arbitrary: headerPiece },
        { weight: 2, arbitrary: ownedPiece },
        { weight: 3, arbitrary: otherPiece },
      ),
      fc.constantFrom('\n', '\r\n'),
    ),
    { maxLength: 25 },
  )
  .chain((lines) => fc.tuple(fc.constant(lines), fc.boolean()));

const settingsArb = fc
  .subarray([...OWNED], { minLength: 1 })
  .chain((keys) =>
    fc.tuple(...keys.map((k) => fc.tuple(fc.constant(k), fc.integer({ min: 0, max: PGBOUNCER_MAX_INT })))),
  )
  .map((entries) => new Map<string, number>(entries));

type Expected = { ok: false; reason: IniRefusalReason } | { ok: true; text: string; changed: boolean };

/** Independent model of the contract, driven by what the generator knows about each line. */
function model(lines: readonly (readonly [Piece, string])[], settings: ReadonlyMap<string, number>): Expected {
  let inPgb = false;
  let seenHeader = false;
  let anchor = -1;
  const seen = new Map<string, number>();
  for (const [i, [piece]] of lines.entries()) {
    if (piece.kind === 'header') {
      inPgb = piece.pgbouncer;
      if (inPgb) {
        if (seenHeader) return { ok: false, reason: 'DuplicateKey' };
        seenHeader = true;
        anchor = i;
      }
      continue;
    }
    if (!inPgb) continue;
    if (piece.kind === 'other') {
      if (piece.content) anchor = i;
      continue;
    }
    anchor = i;
    if (!settings.has(piece.key)) continue;
    if (!piece.valid) return { ok: false, reason: 'UnparsableValue' };
    if (seen.has(piece.key)) return { ok: false, reason: 'DuplicateKey' };
    seen.set(piece.key, i);
  }
  if (!seenHeader) return { ok: false, reason: 'NoPgbouncerSection' };

  const out = lines.map(([piece, eol]) => ({ piece, text: pieceText(piece), eol }));
  let changed = false;
  for (const [key, index] of seen) {
    const entry = out[index];
    const value = settings.get(key);
    if (entry?.piece.kind !== 'owned' || value === undefined) throw new Error('model bug');
    if (entry.piece.value !== String(value)) {
      entry.text = entry.piece.prefix + String(value) + entry.piece.suffix;
      changed = true;
    }
  }
  const missing = [...settings].filter(([key]) => !seen.has(key));
  if (missing.length > 0) {
    changed = true;
    const anchorLine = out[anchor];
    if (anchorLine === undefined) throw new Error('model bug');
    const fileEol = out.find((l) => l.eol !== '')?.eol ?? '\n';
    const eol = anchorLine.eol === '' ? fileEol : anchorLine.eol;
    const lastWasUnterminated = anchorLine.eol === '';
    anchorLine.eol = eol;
    const added = missing.map(([key, value], j) => ({
      piece: anchorLine.piece,
      text: `${key} = ${value}`,
      eol: lastWasUnterminated && j === missing.length - 1 ? '' : eol,
    }));
    out.splice(anchor + 1, 0, ...added);
  }
  return { ok: true, text: out.map((l) => l.text + l.eol).join(''), changed };
}

function render(lines: readonly (readonly [Piece, string])[], finalNewline: boolean): string {
  return lines.map(([p, eol], i) => pieceText(p) + (i === lines.length - 1 && !finalNewline ? '' : eol)).join('');
}

describe('pgbouncer-ini fuzz', () => {
  it('structured text: refuses exactly when the model does, otherwise produces exactly the modelled text', () => {
    fc.assert(
      fc.property(structuredDoc, settingsArb, ([lines, finalNewline], settings) => {
        const text = render(lines, finalNewline);
        const terminated = lines.map(([p, eol], i): readonly [Piece, string] => [
          p,
          i === lines.length - 1 && !finalNewline ? '' : eol,
        ]);
        const expected = model(terminated, settings);
        const actual = setPgbouncerSettings(text, settings);
        if (!expected.ok) {
          expect(actual).toMatchObject({ ok: false, reason: expected.reason });
          return;
        }
        expect(actual).toEqual(expected);
      }),
      { numRuns: 2000 },
    );
  });

  // -------------------------------------------------------------------------
  // Fuzz 2: chaotic text (random fragments, control characters, U+FFFD, CR,
  // brackets) checked only against the generic contract.

  const fragment = fc.oneof(
    {
      weight: 30,
      arbitrary: fc.constantFrom(
        '[',
        ']',
        '=',
        ';',
        '#',
        ' ',
        '\t',
        '\r',
        '%',
        '0',
        '7',
        'a',
        '_',
        'default_pool_size',
        'MAX_CLIENT_CONN',
        'pgbouncer',
        '[pgbouncer]',
        'users',
      ),
    },
    { weight: 1, arbitrary: fc.constantFrom('\u0000', '\uFFFD') },
  );
  const chaoticLine = fc.oneof(
    fc.array(fragment, { maxLength: 8 }).map((parts) => parts.join('')),
    fc.tuple(fc.constantFrom(...OWNED), ws, fc.nat({ max: 999 })).map(([k, s, n]) => `${k}${s}=${s}${n}`),
    fc.constantFrom('[pgbouncer]', '[databases]', ''),
  );
  // Half the documents start with a [pgbouncer] header so that many are editable.
  const chaoticText = fc
    .tuple(
      fc.constantFrom('', '[pgbouncer]\n', '[pgbouncer]\r\n'),
      fc.array(fc.tuple(chaoticLine, fc.constantFrom('\n', '\r\n')), { maxLength: 20 }),
      fc.boolean(),
    )
    .map(
      ([head, lines, finalNewline]) =>
        head + lines.map(([l, eol], i) => l + (i === lines.length - 1 && !finalNewline ? '' : eol)).join(''),
    );

  const split = (t: string): string[] => t.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const strip = (l: string): string => l.replace(/\r?\n$/, '');

  it('a key ended by a lone CR is the key (fuzz regression): refused before and after an edit alike', () => {
    const text = '[pgbouncer]\nMAX_CLIENT_CONN\r';
    const read = readPgbouncerSettings(text, ['max_client_conn']);
    expect(read).toMatchObject({ ok: false, reason: 'UnparsableValue' });
    expect(setPgbouncerSettings(text, new Map([['max_client_conn', 0]]))).toMatchObject({
      ok: false,
      reason: 'UnparsableValue',
    });
  });

  it('chaotic text: refuses consistently, or changes only owned value tokens and appended lines; re-read and idempotent', () => {
    fc.assert(
      fc.property(chaoticText, settingsArb, (text, settings) => {
        const keys = [...settings.keys()];
        const before = readPgbouncerSettings(text, keys);
        const result = setPgbouncerSettings(text, settings);
        if (!result.ok) {
          expect(before).toEqual(result);
          expect(result.message.length).toBeGreaterThan(10);
          return;
        }
        if (!before.ok) throw new Error('set succeeded where read refused');

        // Re-reading gives the set values; setting again changes nothing.
        const after = readPgbouncerSettings(result.text, keys);
        expect(after).toEqual({ ok: true, values: settings });
        expect(setPgbouncerSettings(result.text, settings)).toEqual({ ok: true, text: result.text, changed: false });

        // Line-by-line: find the block of appended lines, then every other line
        // is byte-identical or an owned `key = digits` line with only digits changed.
        const inLines = split(text);
        const outLines = split(result.text);
        const appended = [...settings].filter(([k]) => !before.values.has(k)).map(([k, v]) => `${k} = ${v}`);
        const candidates =
          appended.length === 0
            ? [outLines.length]
            : outLines.map((_, i) => i).filter((i) => appended.every((a, j) => strip(outLines[i + j] ?? '') === a));
        const aligned = candidates.some((at) => {
          const kept = [...outLines.slice(0, at), ...outLines.slice(at + appended.length)];
          if (kept.length !== inLines.length) return false;
          const lineOk = (outLine: string, inLine: string): boolean => {
            if (outLine === inLine) return true;
            const owned = /^[ \t]*([A-Za-z_]+)[ \t]*=[ \t]*\d+[ \t\r]*(\r?\n)?$/.exec(inLine);
            const key = owned?.[1]?.toLowerCase();
            return key !== undefined && settings.has(key) && outLine.replace(/\d+/, '#') === inLine.replace(/\d+/, '#');
          };
          return kept.every((keptLine, i) => {
            const inLine = inLines[i] ?? '';
            // The unterminated last line before the block gains a '\n' or '\r\n'.
            if (appended.length > 0 && i === at - 1 && !inLine.endsWith('\n')) {
              return [keptLine.replace(/\r\n$/, ''), keptLine.replace(/\n$/, '')].some(
                (l) => l !== keptLine && lineOk(l, inLine),
              );
            }
            return lineOk(keptLine, inLine);
          });
        });
        expect(aligned).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});
