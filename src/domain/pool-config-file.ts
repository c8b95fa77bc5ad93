/**
 * Byte-preserving reader and editor of a pool config file: the ConfigMap key that
 * spec.delivery.mode ConfigMap writes and the app mounts and re-reads.
 *
 * Format (what the demo app and the README's reload recipes read): one `KEY=VALUE` a line, KEY an
 * env-var name; blank lines and lines starting with `#` are comments. Spaces around `=` and at
 * either end of a line are allowed. The values of the keys poolpilot owns are plain decimal
 * integers; other keys (DB_POOL_TIMEOUT=2.5, FEATURE=on) are the app's and are kept as they are.
 *
 * Contract: on success every byte of the input is kept except the value tokens of owned keys that
 * change, plus one appended `KEY=value` line per owned key that is missing (after a newline when
 * the text does not end in one). Text that is not in this format (a line without `=`, a key that
 * is no env-var name, an owned key set twice or to a non-integer) is refused with a message naming
 * the line, and nothing is edited: poolpilot cannot tell what the app would make of it.
 */

const LINE = /^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*?)(\s*)$/;
const INTEGER = /^(0|[1-9][0-9]*)$/;
const MAX_VALUE = 2_147_483_647;

export type PoolConfigRead =
  | {
      readonly ok: true;
      /** The owned keys' values; a key the file does not set is absent. */
      readonly values: ReadonlyMap<string, number>;
    }
  | { readonly ok: false; readonly message: string };

export type PoolConfigEdit =
  { readonly ok: true; readonly text: string } | { readonly ok: false; readonly message: string };

interface OwnedLine {
  readonly key: string;
  readonly value: number;
  /** Offsets of the value token in the text. */
  readonly start: number;
  readonly end: number;
}

/** Splits into lines with their offsets; `\r\n` and `\n` both end a line. */
function linesOf(text: string): Array<{ readonly content: string; readonly start: number }> {
  const lines: Array<{ content: string; start: number }> = [];
  let start = 0;
  while (start < text.length) {
    const newline = text.indexOf('\n', start);
    const end = newline === -1 ? text.length : newline;
    const content = text.slice(start, end).replace(/\r$/, '');
    lines.push({ content, start });
    start = end + 1;
  }
  return lines;
}

function scan(
  text: string,
  owned: readonly string[],
): { ok: true; lines: OwnedLine[] } | { ok: false; message: string } {
  const found: OwnedLine[] = [];
  for (const [index, { content, start }] of linesOf(text).entries()) {
    const where = `line ${index + 1}`;
    const trimmed = content.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const match = LINE.exec(content);
    if (!match)
      return {
        ok: false,
        message: `${where} ${JSON.stringify(trimmed.slice(0, 80))} is not KEY=VALUE with KEY an env var name; fix or remove it (comments start with #)`,
      };
    const [, lead = '', key = '', equals = '', raw = ''] = match;
    if (!owned.includes(key)) continue;
    if (found.some((line) => line.key === key))
      return { ok: false, message: `${where}: ${key} is set twice; keep one line` };
    if (!INTEGER.test(raw) || Number(raw) > MAX_VALUE)
      return {
        ok: false,
        message: `${where}: ${key}=${JSON.stringify(raw)} is not a whole number; set it to an integer or remove the line`,
      };
    const valueStart = start + lead.length + key.length + equals.length;
    found.push({ key, value: Number(raw), start: valueStart, end: valueStart + raw.length });
  }
  return { ok: true, lines: found };
}

/** The values of the `owned` keys, or why the text cannot be edited safely. */
export function readPoolConfig(text: string, owned: readonly string[]): PoolConfigRead {
  const scanned = scan(text, owned);
  if (!scanned.ok) return scanned;
  return { ok: true, values: new Map(scanned.lines.map((line) => [line.key, line.value])) };
}

/** `text` with `writes` set (see the file comment for what is kept); refuses what readPoolConfig refuses. */
export function setPoolConfig(text: string, writes: ReadonlyMap<string, number>): PoolConfigEdit {
  const scanned = scan(text, [...writes.keys()]);
  if (!scanned.ok) return scanned;
  let edited = '';
  let copied = 0;
  for (const line of [...scanned.lines].sort((a, b) => a.start - b.start)) {
    edited += text.slice(copied, line.start) + String(writes.get(line.key) ?? line.value);
    copied = line.end;
  }
  edited += text.slice(copied);
  const missing = [...writes].filter(([key]) => !scanned.lines.some((line) => line.key === key));
  if (missing.length > 0) {
    const newline = text.includes('\r\n') ? '\r\n' : '\n';
    if (edited.length > 0 && !edited.endsWith('\n')) edited += newline;
    edited += missing.map(([key, value]) => `${key}=${value}${newline}`).join('');
  }
  return { ok: true, text: edited };
}
