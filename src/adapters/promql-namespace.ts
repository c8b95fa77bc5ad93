/**
 * `--enforce-namespace-label`: every vector selector of a policy's query must read only its own
 * namespace's series. {@link enforceNamespace} rewrites a PromQL expression so that each selector
 * carries `namespace="<ns>"`, or refuses the expression when it cannot do so safely. Pure.
 *
 * The query is parsed with the grammar Prometheus' own web UI uses (`@prometheus-io/lezer-promql`),
 * so keywords used as metric names (`max(sum)`, `count(and)`), upper-case keywords (`sum BY (pod)`)
 * and every selector position (ranges, subqueries, `offset`, `@`, function and aggregation
 * arguments, both sides of binary operators) are read as Prometheus reads them.
 *
 * Contract:
 * - Each vector selector (`metric`, `metric{…}`, `{…}`, `{"quoted.metric"}`) gets
 *   `namespace="<ns>"` inserted as its first matcher; one that already has exactly
 *   `namespace="<ns>"` is left as it is. The rest of the text is kept byte for byte (spacing,
 *   comments, string arguments, label lists of `by`/`without`/`on`/`ignoring`/`group_left`/
 *   `group_right`, numbers, durations).
 * - Refused (`ok: false`, a message saying what to change): a selector matching another namespace
 *   (`namespace="B"`, also spelt `"namespace"="B"`), a namespace matcher other than `=` (`=~`, `!=`,
 *   `!~`: a regex or negation cannot be narrowed safely), and any query the grammar cannot parse
 *   (its syntax tree has an error node) or whose strings Prometheus would reject (unterminated,
 *   unknown escape). Refusing is the safe side: the query is not run. The grammar refuses a few
 *   queries Prometheus accepts: metrics named `on`, `bool`, `offset`, `ignoring`, `group_left` or
 *   `group_right`, which can be written `{__name__="on"}` instead.
 * - `inf` and `nan` are numbers (as for Prometheus), not metric names; a query without selectors
 *   (`vector(1)`) is unchanged.
 */
import type { SyntaxNode } from '@lezer/common';
import { parser } from '@prometheus-io/lezer-promql';
import { escapePromqlString } from './prometheus-queries.js';

export type EnforceResult =
  { readonly ok: true; readonly expr: string } | { readonly ok: false; readonly message: string };

/** Rewrites `expr` so that every vector selector reads only `namespace`'s series; see the module comment. */
export function enforceNamespace(expr: string, namespace: string): EnforceResult {
  const tree = parser.parse(expr);
  const selectors: SyntaxNode[] = [];
  let badString: { readonly at: number; readonly problem: string } | undefined;
  let syntaxError: SyntaxNode | undefined;
  tree.iterate({
    enter: (ref) => {
      if (ref.type.isError) syntaxError ??= ref.node;
      else if (ref.name === 'VectorSelector') selectors.push(ref.node);
      else if (ref.name === 'StringLiteral' && badString === undefined) {
        const literal = readStringLiteral(expr.slice(ref.from, ref.to));
        if ('problem' in literal) badString = { at: ref.from, problem: literal.problem };
      }
    },
  });
  // An unterminated string explains the error nodes after it, so it is reported first.
  if (badString !== undefined)
    return refuse(`cannot parse the query: the string at character ${badString.at + 1} ${badString.problem}`);
  if (syntaxError !== undefined) return refuse(`cannot parse the query: ${describeSyntaxError(expr, syntaxError)}`);

  const matcher = `namespace="${escapePromqlString(namespace)}"`;
  const insertions: { readonly at: number; readonly text: string }[] = [];
  for (const selector of selectors) {
    const matchers = selector.getChild('LabelMatchers');
    if (matchers === null) {
      // A bare metric name: the selector is exactly the identifier.
      insertions.push({ at: selector.to, text: `{${matcher}}` });
      continue;
    }
    const own = ownNamespaceMatcher(expr, matchers, namespace);
    if (typeof own === 'string') return refuse(own);
    if (own) continue;
    const empty = !MATCHER_NODES.some((name) => matchers.getChild(name) !== null);
    insertions.push({ at: matchers.from + 1, text: empty ? matcher : `${matcher},` });
  }
  let out = expr;
  for (const { at, text } of insertions.sort((a, b) => b.at - a.at)) out = out.slice(0, at) + text + out.slice(at);
  return { ok: true, expr: out };
}

/** What a selector's `{…}` holds besides comments; a lone QuotedLabelName is a quoted metric name. */
const MATCHER_NODES = ['UnquotedLabelMatcher', 'QuotedLabelMatcher', 'QuotedLabelName'];

/**
 * Whether the `{…}` of a selector already has `namespace="<namespace>"`; a message saying what to
 * change when one of its matchers names the namespace label otherwise.
 */
function ownNamespaceMatcher(expr: string, matchers: SyntaxNode, namespace: string): boolean | string {
  let own = false;
  for (let m = matchers.firstChild; m !== null; m = m.nextSibling) {
    // A lone QuotedLabelName is a quoted metric name (`{"http.requests"}`), not a label matcher.
    if (m.name !== 'UnquotedLabelMatcher' && m.name !== 'QuotedLabelMatcher') continue;
    const name = m.firstChild;
    const op = m.getChild('MatchOp');
    const value = m.getChild('StringLiteral');
    if (name === null || op === null || value === null) return 'cannot parse the query: a label matcher is incomplete';
    const label = name.name === 'LabelName' ? expr.slice(name.from, name.to) : stringValue(expr, name);
    if (label !== 'namespace') continue;
    const opText = expr.slice(op.from, op.to);
    const valueText = expr.slice(value.from, value.to);
    if (opText !== '=') {
      return `the selector matches namespace ${opText} ${valueText}; with --enforce-namespace-label a query may only read its own namespace: write namespace="${namespace}" or leave the namespace matcher out (it is added)`;
    }
    if (stringValue(expr, value) !== namespace) {
      return `the selector reads namespace ${valueText}, not this policy's namespace "${namespace}"; with --enforce-namespace-label a query may only read its own namespace: remove that matcher or set it to "${namespace}"`;
    }
    own = true;
  }
  return own;
}

/** Keywords the grammar never reads as metric names, though Prometheus does. */
const RESERVED_WORDS = new Set(['on', 'bool', 'offset', 'ignoring', 'group_left', 'group_right']);

/** Where and why the parse failed, in words a query author can act on. */
function describeSyntaxError(expr: string, error: SyntaxNode): string {
  if (expr.trim() === '') return 'it is empty';
  const rest = expr.slice(error.from);
  const token = /^\s*([A-Za-z_:][A-Za-z0-9_:]*|\S)/.exec(rest)?.[1];
  if (token === undefined || token === '#') {
    const open = unclosedBracket(expr, error);
    return open === undefined
      ? 'it ends before it is complete'
      : `it ends before the "${open.bracket}" at character ${open.at + 1} is closed`;
  }
  const where = `unexpected ${JSON.stringify(token)} at character ${error.from + rest.indexOf(token) + 1}`;
  return RESERVED_WORDS.has(token.toLowerCase())
    ? `${where}; a metric named ${token} must be written {__name__="${token}"}`
    : where;
}

/** The bracket an error at the end of the query sits in, if any. */
function unclosedBracket(
  expr: string,
  error: SyntaxNode,
): { readonly bracket: string; readonly at: number } | undefined {
  for (let node = error.parent; node !== null; node = node.parent) {
    if (node.name === 'LabelMatchers') return { bracket: '{', at: node.from };
    if (node.name === 'FunctionCallBody' || node.name === 'ParenExpr' || node.name === 'GroupingLabels')
      return { bracket: '(', at: node.from };
    if ((node.name === 'MatrixSelector' || node.name === 'SubqueryExpr') && node.firstChild !== null) {
      return { bracket: '[', at: expr.indexOf('[', node.firstChild.to) };
    }
  }
  return undefined;
}

/** The value of a string literal node that {@link readStringLiteral} has accepted. */
function stringValue(expr: string, literal: SyntaxNode): string | undefined {
  const read = readStringLiteral(expr.slice(literal.from, literal.to));
  return 'value' in read ? read.value : undefined;
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
};
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * A PromQL string literal's value, as Prometheus reads it (Go's escapes in "…" and '…'; `…` raw),
 * or why Prometheus would reject it. The grammar's tokenizer accepts unterminated strings and any
 * escape, so every string of a query is checked here.
 */
function readStringLiteral(literal: string): { readonly value: string } | { readonly problem: string } {
  const quote = literal.charAt(0);
  const unterminated = { problem: `is not terminated (close it with ${quote})` };
  if (literal.length < 2 || !literal.endsWith(quote)) return unterminated;
  const body = literal.slice(1, -1);
  if (quote === '`') return { value: body };
  const bytes: number[] = [];
  let i = 0;
  while (i < body.length) {
    const escape = body.indexOf('\\', i);
    const plainEnd = escape === -1 ? body.length : escape;
    bytes.push(...utf8.encode(body.slice(i, plainEnd)));
    if (escape === -1) break;
    const kind = body.charAt(escape + 1);
    if (kind === '') return unterminated; // the closing quote is escaped
    const simple = SIMPLE_ESCAPES[kind] ?? (kind === quote ? quote : undefined);
    const numeric = /^(?:x[0-9a-fA-F]{2}|[0-7]{3}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})/.exec(body.slice(escape + 1))?.[0];
    if (simple !== undefined) {
      bytes.push(...utf8.encode(simple));
      i = escape + 2;
    } else if (numeric !== undefined) {
      const octal = /[0-7]/.test(kind);
      const code = octal ? parseInt(numeric, 8) : parseInt(numeric.slice(1), 16);
      if (octal || kind === 'x') {
        if (code > 0xff) return { problem: `has an invalid escape \\${numeric}` };
        bytes.push(code); // \x and octal escapes are single bytes in Go
      } else {
        if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
          return { problem: `has an invalid escape \\${numeric}` };
        bytes.push(...utf8.encode(String.fromCodePoint(code)));
      }
      i = escape + 1 + numeric.length;
    } else {
      return { problem: `has an unknown escape \\${kind}` };
    }
  }
  return { value: fromUtf8.decode(new Uint8Array(bytes)) };
}

function refuse(message: string): EnforceResult {
  return { ok: false, message };
}
