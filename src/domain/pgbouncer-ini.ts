/**
 * Byte-preserving editor for the integer settings poolpilot owns in the
 * `[pgbouncer]` section of a pgbouncer.ini text.
 *
 * Contract: on success every byte of the input is kept except the value
 * tokens of owned keys that change, plus (for owned keys that are missing)
 * one inserted `key = value` line per key. Comments, blank lines, ordering,
 * whitespace, CRLF/LF line endings, other sections, other keys and the
 * presence or absence of a final newline are untouched. When the text cannot
 * be edited safely the functions refuse (ok: false) and edit nothing.
 *
 * The line grammar mirrors the parser of PgBouncer 1.18 (Debian 12), checked
 * against the real binary:
 * - leading whitespace is skipped; `;` or `#` then starts a comment line;
 * - `[name]` starts a section; PgBouncer itself compares section names and
 *   keys case-sensitively and refuses to load a file with `[PGBouncer]` or
 *   `Default_Pool_Size`. We match case-insensitively anyway, so that such a
 *   spelling is still seen as an occurrence (e.g. for duplicate detection)
 *   rather than silently ignored;
 * - `key = value`: spaces/tabs around `=`, and the value is the WHOLE rest of
 *   the line minus trailing whitespace. PgBouncer has no inline comments:
 *   `default_pool_size = 20 ; note` is a load error, so we refuse it;
 * - integers are read with strtol(base 0): `020` is octal 16 and `0x14` is 20,
 *   and values beyond INT_MAX wrap silently. We therefore accept only plain
 *   decimal `0|[1-9][0-9]*` up to 2147483647;
 * - a second `[pgbouncer]` header resets every setting of the earlier one to
 *   its default, so an edit there could be silently discarded: refused;
 * - `%include file` lines are passed through untouched. An included file that
 *   also sets an owned key is NOT seen here (callers should verify the effect
 *   with SHOW CONFIG after RELOAD).
 */

export type IniRefusalReason = 'DuplicateKey' | 'NoPgbouncerSection' | 'UnparsableValue' | 'InvalidText';

export interface IniRefusal {
  readonly ok: false;
  readonly reason: IniRefusalReason;
  /** Says what to fix, naming the key and the 1-based line number. */
  readonly message: string;
}

export type IniEditResult = { readonly ok: true; readonly text: string; readonly changed: boolean } | IniRefusal;

export type IniReadResult = { readonly ok: true; readonly values: ReadonlyMap<string, number> } | IniRefusal;

/** Largest value PgBouncer stores without overflow (its settings are C ints). */
export const PGBOUNCER_MAX_INT = 2147483647;

const SECTION = 'pgbouncer';
/** Key names we accept from callers: PgBouncer setting names are of this form. */
const KEY_NAME = /^[A-Za-z0-9_]+$/;
const PLAIN_INT = /^(?:0|[1-9][0-9]*)$/;
/** C isspace() minus '\n' (lines are already split on '\n'). */
const LEADING_WS = /^[ \t\v\f\r]*/;
const TRAILING_WS = /[ \t\v\f\r]*$/;

interface Line {
  /** The line without its terminator. */
  readonly content: string;
  /** '\r\n', '\n', or '' for a last line without terminator. */
  readonly eol: string;
}

interface Occurrence {
  readonly lineIndex: number;
  /** Offsets of the value token inside `content`. */
  readonly valueStart: number;
  readonly valueEnd: number;
  readonly value: number;
}

interface Analysis {
  readonly lines: readonly Line[];
  /** Owned key (ASCII-lowercased) → its single occurrence in [pgbouncer]. */
  readonly found: ReadonlyMap<string, Occurrence>;
  /** Index of the line after which missing keys are inserted. */
  readonly anchorIndex: number;
}

function refuse(reason: IniRefusalReason, message: string): IniRefusal {
  return { ok: false, reason, message };
}

/** ASCII-only lowercasing: PgBouncer keys are ASCII, and locale rules must not create matches. */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

function splitLines(text: string): Line[] {
  const lines: Line[] = [];
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const raw = nl === -1 ? text.slice(pos) : text.slice(pos, nl + 1);
    pos += raw.length;
    const eol = raw.endsWith('\r\n') ? '\r\n' : raw.endsWith('\n') ? '\n' : '';
    lines.push({ content: raw.slice(0, raw.length - eol.length), eol });
  }
  return lines;
}

/** Validates caller-supplied key names; a bad name is a programming error, not a text problem. */
function normaliseKeys(keys: Iterable<string>): string[] {
  const seen = new Set<string>();
  for (const key of keys) {
    if (!KEY_NAME.test(key)) {
      throw new RangeError(`pgbouncer-ini: invalid key name ${JSON.stringify(key)} (expected [A-Za-z0-9_]+)`);
    }
    const lower = asciiLower(key);
    if (seen.has(lower)) {
      throw new RangeError(`pgbouncer-ini: key ${JSON.stringify(key)} given twice (keys are case-insensitive)`);
    }
    seen.add(lower);
  }
  return [...seen];
}

function findInvalidChar(lines: readonly Line[]): IniRefusal | undefined {
  for (const [i, line] of lines.entries()) {
    const nul = line.content.indexOf('\u0000');
    const replacement = line.content.indexOf('\uFFFD');
    const col = nul === -1 ? replacement : replacement === -1 ? nul : Math.min(nul, replacement);
    if (col !== -1) {
      const what = col === nul ? 'a NUL byte' : 'U+FFFD (bytes that were not valid UTF-8)';
      return refuse(
        'InvalidText',
        `line ${i + 1}, column ${col + 1}: contains ${what}; fix the file's encoding before poolpilot edits it`,
      );
    }
  }
  return undefined;
}

/**
 * Walks the lines once, locating owned keys of [pgbouncer] and the insertion
 * anchor, or returns the first refusal.
 */
function analyse(text: string, ownedLower: readonly string[]): Analysis | IniRefusal {
  const lines = splitLines(text);
  const invalid = findInvalidChar(lines);
  if (invalid) return invalid;

  const owned = new Set(ownedLower);
  const found = new Map<string, Occurrence>();
  let inPgbouncer = false;
  let headerIndex: number | undefined;
  let anchorIndex = -1;

  for (const [i, { content }] of lines.entries()) {
    const lineNo = i + 1;
    const body = content.slice((LEADING_WS.exec(content)?.[0] ?? '').length);
    if (body === '' || body.startsWith(';') || body.startsWith('#')) continue;

    if (body.startsWith('[')) {
      const close = body.indexOf(']');
      if (close === -1) {
        return refuse(
          'InvalidText',
          `line ${lineNo}: section header has no closing ']'; PgBouncer cannot load this file`,
        );
      }
      const rest = body.slice(close + 1).replace(LEADING_WS, '');
      if (rest !== '' && !rest.startsWith(';') && !rest.startsWith('#')) {
        return refuse(
          'InvalidText',
          `line ${lineNo}: text after the section header (PgBouncer would read it as a setting); move it to its own line`,
        );
      }
      inPgbouncer = asciiLower(body.slice(1, close)) === SECTION;
      if (inPgbouncer) {
        if (headerIndex !== undefined) {
          return refuse(
            'DuplicateKey',
            `line ${lineNo}: second [pgbouncer] section (first at line ${headerIndex + 1}); PgBouncer resets the earlier section's settings, merge the two sections`,
          );
        }
        headerIndex = i;
        anchorIndex = i;
      }
      continue;
    }

    if (!inPgbouncer) continue;
    // Any non-comment line of the section (setting, %include, even junk) is
    // "content": missing keys go after the last one, before trailing comments.
    anchorIndex = i;

    // PgBouncer splits on isspace(): a key ends at any of space, \t, \v, \f, \r or at "=".
    const keyMatch = /^[^ \t\v\f\r=]+/.exec(body);
    if (keyMatch === null) continue;
    const keyText = keyMatch[0];
    const key = asciiLower(keyText);
    if (!owned.has(key)) continue;

    const keyStart = content.length - body.length;
    const afterKey = content.slice(keyStart + keyText.length);
    const eqMatch = /^[ \t\v\f\r]*=[ \t\v\f\r]*/.exec(afterKey);
    if (eqMatch === null) {
      return refuse('UnparsableValue', `line ${lineNo}: ${keyText} has no '='; write it as "${key} = <integer>"`);
    }
    const valueStart = keyStart + keyText.length + eqMatch[0].length;
    const valueEnd = content.length - (TRAILING_WS.exec(content)?.[0] ?? '').length;
    const raw = content.slice(valueStart, Math.max(valueStart, valueEnd));
    const value = Number(raw);
    if (!PLAIN_INT.test(raw) || value > PGBOUNCER_MAX_INT) {
      return refuse(
        'UnparsableValue',
        `line ${lineNo}: ${keyText} = ${JSON.stringify(raw)} is not a plain decimal integer in 0..${PGBOUNCER_MAX_INT} (PgBouncer has no inline comments, reads leading zeros as octal and wraps large values); set it to a plain number`,
      );
    }

    const previous = found.get(key);
    if (previous !== undefined) {
      return refuse(
        'DuplicateKey',
        `line ${lineNo}: ${keyText} is already set in [pgbouncer] at line ${previous.lineIndex + 1}; delete one of the two lines`,
      );
    }
    found.set(key, { lineIndex: i, valueStart, valueEnd: valueStart + raw.length, value });
  }

  if (headerIndex === undefined) {
    return refuse(
      'NoPgbouncerSection',
      'no [pgbouncer] section; add a "[pgbouncer]" header line before the pooler settings',
    );
  }
  return { lines, found, anchorIndex };
}

/**
 * Reads the integer values of `keys` from [pgbouncer]; keys that are not set
 * are absent from the map, which is keyed by the caller's spelling.
 * Throws RangeError for invalid key names (a caller bug, not a text problem).
 */
export function readPgbouncerSettings(text: string, keys: readonly string[]): IniReadResult {
  normaliseKeys(keys);
  const analysis = analyse(text, keys.map(asciiLower));
  if (!('lines' in analysis)) return analysis;
  const values = new Map<string, number>();
  for (const key of keys) {
    const occurrence = analysis.found.get(asciiLower(key));
    if (occurrence !== undefined) values.set(key, occurrence.value);
  }
  return { ok: true, values };
}

/**
 * Sets each key of `settings` in [pgbouncer]. An existing key keeps its line
 * and only its value token is replaced. Missing keys are inserted, in the
 * map's order, as `key = value` lines (caller's spelling) after the last
 * non-comment line of [pgbouncer] (or after its header), so trailing comments
 * and blank lines that introduce the next section stay below them; the new
 * lines use the anchor line's terminator (or the file's first one, else LF),
 * and a file without final newline still ends without one.
 * Throws RangeError for invalid key names or values outside 0..PGBOUNCER_MAX_INT.
 */
export function setPgbouncerSettings(text: string, settings: ReadonlyMap<string, number>): IniEditResult {
  normaliseKeys(settings.keys());
  for (const [key, value] of settings) {
    if (!Number.isSafeInteger(value) || value < 0 || value > PGBOUNCER_MAX_INT) {
      throw new RangeError(`pgbouncer-ini: value ${value} for ${key} is not an integer in 0..${PGBOUNCER_MAX_INT}`);
    }
  }
  const analysis = analyse(text, [...settings.keys()].map(asciiLower));
  if (!('lines' in analysis)) return analysis;

  const contents = analysis.lines.map((l) => l.content);
  const eols = analysis.lines.map((l) => l.eol);
  const missing: string[] = [];
  let changed = false;

  for (const [key, value] of settings) {
    const occurrence = analysis.found.get(asciiLower(key));
    if (occurrence === undefined) {
      missing.push(`${key} = ${value}`);
      continue;
    }
    if (occurrence.value === value) continue;
    const content = contents[occurrence.lineIndex] ?? '';
    contents[occurrence.lineIndex] =
      content.slice(0, occurrence.valueStart) + String(value) + content.slice(occurrence.valueEnd);
    changed = true;
  }

  if (missing.length > 0) {
    const anchor = analysis.anchorIndex;
    const fileEol = eols.find((e) => e !== '') ?? '\n';
    const anchorEol = eols[anchor] ?? '';
    const eol = anchorEol === '' ? fileEol : anchorEol;
    if (anchorEol === '') {
      // The anchor is the last line and has no terminator: give it one and
      // leave the new last line unterminated, as the file was.
      eols[anchor] = eol;
      eols.splice(anchor + 1, 0, ...missing.map((_, j) => (j === missing.length - 1 ? '' : eol)));
    } else {
      eols.splice(anchor + 1, 0, ...missing.map(() => eol));
    }
    contents.splice(anchor + 1, 0, ...missing);
    changed = true;
  }

  if (!changed) return { ok: true, text, changed: false };
  return { ok: true, text: contents.map((c, i) => c + (eols[i] ?? '')).join(''), changed: true };
}
