/**
 * `--enforce-namespace-label`: every vector selector of a policy's query must read only its own
 * namespace's series. {@link enforceNamespace} rewrites a PromQL expression so that each selector
 * carries `namespace="<ns>"`, or refuses the expression when it cannot do so safely. Pure.
 *
 * Contract:
 * - Each vector selector (`metric`, `metric{…}`, `{…}`, with or without a range `[5m]`, `offset`
 *   or `@`) gets `namespace="<ns>"` as its first matcher; one that already has exactly
 *   `namespace="<ns>"` is left as it is. Nothing else in the text changes (spacing, comments,
 *   string arguments of functions, label lists of `by`/`without`/`on`/`ignoring`/`group_left`/
 *   `group_right`, numbers, durations).
 * - Refused (`ok: false`, a message saying what to change): a selector matching another namespace
 *   (`namespace="B"`), a namespace matcher other than `=` (`=~`, `!=`, `!~`: a regex or negation
 *   cannot be narrowed safely), quoted metric or label names (`{"metric.name"}`), and any text the
 *   tokenizer does not understand (unbalanced brackets, unterminated strings, unknown characters
 *   such as `$`). Refusing is the safe side: the query is not run.
 * - The output is a rewriting of the input; a query without selectors (`vector(1)`) is unchanged.
 */

export type EnforceResult = { readonly ok: true; readonly expr: string } | { readonly ok: false; readonly message: string };

const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);
/** Keywords after which a parenthesised list holds label names, not expressions. */
const LABEL_LIST_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const BINARY_KEYWORDS = new Set(['and', 'or', 'unless', 'atan2', 'bool', 'offset']);
/** Identifiers that are number literals in PromQL. */
const NUMBER_WORDS = new Set(['inf', 'nan']);

type TokenKind = 'space' | 'comment' | 'string' | 'number' | 'ident' | 'punct' | 'op';
interface Token {
  readonly kind: TokenKind;
  readonly text: string;
}

const IDENT = /[A-Za-z_:][A-Za-z0-9_:]*/y;
const NUMBER = /(?:0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(?:[a-zA-Z][a-zA-Z0-9]*)*/y;
const SPACE = /[ \t\r\n]+/y;
const OPERATORS = ['==', '!=', '<=', '>=', '=~', '!~', '+', '-', '*', '/', '%', '^', '<', '>', '=', '@', ','];

function tokenize(expr: string): Token[] | string {
  const tokens: Token[] = [];
  let i = 0;
  const sticky = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    return re.exec(expr)?.[0];
  };
  while (i < expr.length) {
    const ch = expr.charAt(i);
    let text: string | undefined;
    let kind: TokenKind;
    if ((text = sticky(SPACE)) !== undefined) kind = 'space';
    else if (ch === '#') {
      const end = expr.indexOf('\n', i);
      text = expr.slice(i, end === -1 ? expr.length : end);
      kind = 'comment';
    } else if (ch === '"' || ch === "'" || ch === '`') {
      let j = i + 1;
      while (j < expr.length && expr.charAt(j) !== ch) {
        if (ch !== '`' && expr.charAt(j) === '\\') j++;
        else if (ch !== '`' && expr.charAt(j) === '\n') break;
        j++;
      }
      if (j >= expr.length || expr.charAt(j) !== ch) return `unterminated string starting at character ${i + 1}`;
      text = expr.slice(i, j + 1);
      kind = 'string';
    } else if ((text = sticky(NUMBER)) !== undefined) kind = 'number';
    else if ((text = sticky(IDENT)) !== undefined) kind = 'ident';
    else if ('(){}[]'.includes(ch)) {
      text = ch;
      kind = 'punct';
    } else {
      const op = OPERATORS.find((o) => expr.startsWith(o, i));
      if (op === undefined) return `unexpected character ${JSON.stringify(ch)} at character ${i + 1}`;
      text = op;
      kind = 'op';
    }
    tokens.push({ kind, text });
    i += text.length;
  }
  return tokens;
}

/** A PromQL string literal's value (escapes of "…"/'…' resolved; `…` taken as is). */
function stringValue(literal: string): string | undefined {
  const quote = literal.charAt(0);
  const body = literal.slice(1, -1);
  if (quote === '`') return body;
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const ch = body.charAt(i);
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = body.charAt(++i);
    const simple: Readonly<Record<string, string>> = { n: '\n', r: '\r', t: '\t', '\\': '\\', '"': '"', "'": "'", a: '\x07', b: '\b', f: '\f', v: '\v' };
    const mapped = simple[next];
    if (mapped === undefined) return undefined; // \x, \u, octal: not needed for label values here
    out += mapped;
  }
  return out;
}

/** Escapes a value for a "…" literal. */
function quoteValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
}

/**
 * Rewrites `expr` so that every vector selector reads only `namespace`'s series; see the module
 * comment for the contract.
 */
export function enforceNamespace(expr: string, namespace: string): EnforceResult {
  const tokens = tokenize(expr);
  if (typeof tokens === 'string') return refuse(`cannot parse the query safely: ${tokens}`);
  const matcher = `namespace=${quoteValue(namespace)}`;
  const out: string[] = [];
  const depth: string[] = [];
  /** Index of the next significant token at or after `from`. */
  const nextSignificant = (from: number): number => {
    let j = from;
    while (j < tokens.length && (tokens[j]?.kind === 'space' || tokens[j]?.kind === 'comment')) j++;
    return j;
  };

  let i = 0;
  while (i < tokens.length) {
    const token = tokens[i];
    if (token === undefined) break;
    const { kind, text } = token;

    if (kind === 'ident') {
      const lower = text.toLowerCase();
      const after = nextSignificant(i + 1);
      const nextText = tokens[after]?.text;
      if (LABEL_LIST_KEYWORDS.has(text)) {
        out.push(text);
        i += 1;
        // group_left/group_right may have no list.
        if (nextText !== '(') continue;
        for (let j = i; j <= after; j++) out.push(tokens[j]?.text ?? '');
        const list = copyLabelList(tokens, after + 1, out);
        if (typeof list === 'string') return refuse(list);
        i = list;
        continue;
      }
      if (nextText === '(' || AGGREGATIONS.has(text) || BINARY_KEYWORDS.has(text) || NUMBER_WORDS.has(lower)) {
        out.push(text); // function call, aggregation, keyword or Inf/NaN
        i += 1;
        continue;
      }
      // A metric name: a selector, with or without {…}.
      if (nextText === '{') {
        for (let j = i; j < after; j++) out.push(tokens[j]?.text ?? '');
        const selector = rewriteMatchers(tokens, after, namespace, matcher, out);
        if (typeof selector === 'string') return refuse(selector);
        i = selector;
      } else {
        out.push(`${text}{${matcher}}`);
        i += 1;
      }
      continue;
    }

    if (kind === 'punct') {
      if (text === '{') {
        const selector = rewriteMatchers(tokens, i, namespace, matcher, out);
        if (typeof selector === 'string') return refuse(selector);
        i = selector;
        continue;
      }
      if (text === '}') return refuse('cannot parse the query safely: unbalanced }');
      if (text === '[') {
        // A range or subquery: durations and ':' only.
        let j = i + 1;
        let body = '';
        while (j < tokens.length && tokens[j]?.text !== ']') body += tokens[j++]?.text ?? '';
        if (j >= tokens.length || !/^[\s0-9a-zA-Z.:]*$/.test(body)) return refuse('cannot parse the query safely: a [range] holds more than a duration');
        out.push(`[${body}]`);
        i = j + 1;
        continue;
      }
      if (text === '(') depth.push('(');
      if (text === ')' && depth.pop() === undefined) return refuse('cannot parse the query safely: unbalanced )');
      if (text === ']') return refuse('cannot parse the query safely: unbalanced ]');
    }
    out.push(text);
    i += 1;
  }
  if (depth.length > 0) return refuse('cannot parse the query safely: unbalanced (');
  return { ok: true, expr: out.join('') };
}

/** Copies a `(label, label, …)` list starting after its '('; returns the index after ')'. */
function copyLabelList(tokens: readonly Token[], from: number, out: string[]): number | string {
  let j = from;
  for (; j < tokens.length; j++) {
    const t = tokens[j];
    if (t === undefined) break;
    if (t.text === ')') {
      out.push(')');
      return j + 1;
    }
    if (t.kind !== 'ident' && t.kind !== 'space' && t.kind !== 'comment' && t.text !== ',') {
      return `cannot parse the query safely: ${JSON.stringify(t.text)} in a label list`;
    }
    out.push(t.text);
  }
  return 'cannot parse the query safely: unterminated label list';
}

/**
 * Rewrites the `{…}` starting at `open` (a '{' token): `namespace="<ns>"` first, other matchers
 * as they are. Returns the index after '}', or why it refuses.
 */
function rewriteMatchers(tokens: readonly Token[], open: number, namespace: string, matcher: string, out: string[]): number | string {
  const parts: string[] = [];
  let hasOwn = false;
  let j = open + 1;
  for (;;) {
    while (tokens[j]?.kind === 'space' || tokens[j]?.kind === 'comment') parts.push(tokens[j++]?.text ?? '');
    const t = tokens[j];
    if (t === undefined) return 'cannot parse the query safely: unterminated {';
    if (t.text === '}') {
      j += 1;
      break;
    }
    if (t.kind === 'string') return `quoted names in selectors ({${t.text}…}) are not supported with --enforce-namespace-label; use a plain metric name`;
    if (t.kind !== 'ident') return `cannot parse the query safely: ${JSON.stringify(t.text)} in a selector`;
    const label = t.text;
    let k = j + 1;
    const between: string[] = [];
    while (tokens[k]?.kind === 'space') between.push(tokens[k++]?.text ?? '');
    const op = tokens[k];
    if (op === undefined || !['=', '!=', '=~', '!~'].includes(op.text)) return `cannot parse the query safely: label ${label} has no matcher operator`;
    k += 1;
    const between2: string[] = [];
    while (tokens[k]?.kind === 'space') between2.push(tokens[k++]?.text ?? '');
    const value = tokens[k];
    if (value?.kind !== 'string') return `cannot parse the query safely: label ${label} has no string value`;
    if (label === 'namespace') {
      const v = stringValue(value.text);
      if (op.text !== '=') {
        return `the selector matches namespace ${op.text} ${value.text}; with --enforce-namespace-label a query may only read its own namespace: write namespace="${namespace}" or leave the namespace matcher out (it is added)`;
      }
      if (v !== namespace) {
        return `the selector reads namespace ${value.text}, not this policy's namespace "${namespace}"; with --enforce-namespace-label a query may only read its own namespace: remove that matcher or set it to "${namespace}"`;
      }
      hasOwn = true;
    }
    parts.push(label, ...between, op.text, ...between2, value.text);
    j = k + 1;
    while (tokens[j]?.kind === 'space' || tokens[j]?.kind === 'comment') parts.push(tokens[j++]?.text ?? '');
    if (tokens[j] === undefined) return 'cannot parse the query safely: unterminated {';
    if (tokens[j]?.text === ',') {
      parts.push(',');
      j += 1;
    } else if (tokens[j]?.text !== '}') {
      return 'cannot parse the query safely: matchers must be separated by ","';
    }
  }
  const body = parts.join('');
  out.push(hasOwn ? `{${body}}` : body.trim() === '' ? `{${matcher}}` : `{${matcher},${body}}`);
  return j;
}

function refuse(message: string): EnforceResult {
  return { ok: false, message };
}
