import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { dump } from 'js-yaml';
import { enforceNamespace } from '../../../src/adapters/promql-namespace.js';
import { defaultTemplates, renderTemplate } from '../../../src/adapters/prometheus-queries.js';
import { promtool } from '../../support/promtool.js';

const NS = 'team-a';
const rewrite = (expr: string): string => {
  const result = enforceNamespace(expr, NS);
  if (!result.ok) throw new Error(`refused: ${result.message}`);
  return result.expr;
};
const refusal = (expr: string): string => {
  const result = enforceNamespace(expr, NS);
  if (result.ok) throw new Error(`rewritten to ${result.expr}`);
  return result.message;
};

describe('enforceNamespace: rewrites every selector', () => {
  const cases: readonly (readonly [string, string, string])[] = [
    ['bare metric', 'up', 'up{namespace="team-a"}'],
    ['metric with matchers', 'up{job="api"}', 'up{namespace="team-a",job="api"}'],
    ['empty braces', 'up{}', 'up{namespace="team-a"}'],
    ['space before the braces', 'up {job="api"}', 'up {namespace="team-a",job="api"}'],
    ['selector without a metric name', '{__name__=~"db_.*",job="x"}', '{namespace="team-a",__name__=~"db_.*",job="x"}'],
    [
      'own namespace already there: unchanged',
      'up{namespace="team-a",pod=~"api-.*"}',
      'up{namespace="team-a",pod=~"api-.*"}',
    ],
    ['own namespace in single quotes', "up{namespace='team-a'}", "up{namespace='team-a'}"],
    ['range vector', 'rate(http_requests_total[5m])', 'rate(http_requests_total{namespace="team-a"}[5m])'],
    ['subquery', 'max_over_time(rate(x[1m])[30m:1m])', 'max_over_time(rate(x{namespace="team-a"}[1m])[30m:1m])'],
    ['offset and @', 'x offset -5m + y @ end()', 'x{namespace="team-a"} offset -5m + y{namespace="team-a"} @ end()'],
    ['aggregation with by before', 'sum by (pod, namespace) (x)', 'sum by (pod, namespace) (x{namespace="team-a"})'],
    ['aggregation with without after', 'max(x) without (instance)', 'max(x{namespace="team-a"}) without (instance)'],
    [
      'label names in lists are not metrics',
      'a / on (pod) group_left (node) b',
      'a{namespace="team-a"} / on (pod) group_left (node) b{namespace="team-a"}',
    ],
    [
      'ignoring and group_right without a list',
      'a * ignoring(x) group_right b',
      'a{namespace="team-a"} * ignoring(x) group_right b{namespace="team-a"}',
    ],
    [
      'binary keywords and bool',
      'a > bool 3 and b or c unless d',
      'a{namespace="team-a"} > bool 3 and b{namespace="team-a"} or c{namespace="team-a"} unless d{namespace="team-a"}',
    ],
    [
      'numbers, Inf, NaN are not metrics',
      '100 * x / 1e3 + Inf - NaN + 0x1F',
      '100 * x{namespace="team-a"} / 1e3 + Inf - NaN + 0x1F',
    ],
    [
      'string arguments untouched',
      'label_replace(up, "dst", "$1", "src", "(.*)")',
      'label_replace(up{namespace="team-a"}, "dst", "$1", "src", "(.*)")',
    ],
    [
      'topk and count_values',
      'topk(3, x) + count_values("v", y)',
      'topk(3, x{namespace="team-a"}) + count_values("v", y{namespace="team-a"})',
    ],
    ['metric names with colons', 'job:rate5m:sum', 'job:rate5m:sum{namespace="team-a"}'],
    ['keywords as label names inside braces', 'x{on="1",by="2"}', 'x{namespace="team-a",on="1",by="2"}'],
    ['comments kept', 'max(x) # the worst pod\n', 'max(x{namespace="team-a"}) # the worst pod\n'],
    ['no selector at all', 'vector(50)', 'vector(50)'],
    ['trailing comma in matchers', 'x{job="a",}', 'x{namespace="team-a",job="a",}'],
    // Keywords as metric names: Prometheus reads these as selectors of every namespace.
    ['aggregation keyword as a metric', 'max(sum)', 'max(sum{namespace="team-a"})'],
    ['by as a metric', 'max(by)', 'max(by{namespace="team-a"})'],
    ['and as a metric', 'count(and)', 'count(and{namespace="team-a"})'],
    ['and as a metric after and', 'x and and', 'x{namespace="team-a"} and and{namespace="team-a"}'],
    [
      'without, start and end as metrics',
      'without + start - end',
      'without{namespace="team-a"} + start{namespace="team-a"} - end{namespace="team-a"}',
    ],
    [
      'keywords as grouping labels',
      'sum(sum) by (sum, on, offset)',
      'sum(sum{namespace="team-a"}) by (sum, on, offset)',
    ],
    ['upper-case keywords', 'SUM BY (pod) (x)', 'SUM BY (pod) (x{namespace="team-a"})'],
    ['mixed-case without after', 'Max(x) WITHOUT (pod)', 'Max(x{namespace="team-a"}) WITHOUT (pod)'],
    // Every other selector position.
    [
      'offset and @ on a range',
      'rate(x[5m] offset 1h @ 1700000000)',
      'rate(x{namespace="team-a"}[5m] offset 1h @ 1700000000)',
    ],
    ['@ start()', 'x @ start()', 'x{namespace="team-a"} @ start()'],
    [
      'subquery without a step, with offset',
      'max_over_time(x[10m:] offset 1m)',
      'max_over_time(x{namespace="team-a"}[10m:] offset 1m)',
    ],
    [
      'nested functions and aggregations',
      'histogram_quantile(0.9, sum by (le) (rate(req_bucket{job="a"}[5m])))',
      'histogram_quantile(0.9, sum by (le) (rate(req_bucket{namespace="team-a",job="a"}[5m])))',
    ],
    ['unary minus and power', '-x ^ -y', '-x{namespace="team-a"} ^ -y{namespace="team-a"}'],
    ['parentheses', '((x) + (y[1m:]))', '((x{namespace="team-a"}) + (y{namespace="team-a"}[1m:]))'],
    ['__name__ matcher', '{__name__="on"}', '{namespace="team-a",__name__="on"}'],
    ['quoted metric name (Prometheus 3)', '{"http.requests"}', '{namespace="team-a","http.requests"}'],
    ['quoted metric name with matchers', '{"http.requests", job="x"}', '{namespace="team-a","http.requests", job="x"}'],
    ['quoted label name', 'x{"service.name"="api"}', 'x{namespace="team-a","service.name"="api"}'],
    ['own namespace as a quoted label name', 'x{"namespace"="team-a"}', 'x{"namespace"="team-a"}'],
    ['own namespace written with escapes', 'x{namespace="te\\x61m-\\u0061"}', 'x{namespace="te\\x61m-\\u0061"}'],
    ['own namespace in a raw string', 'x{namespace=`team-a`}', 'x{namespace=`team-a`}'],
    [
      'own namespace in one selector only',
      'x{namespace="team-a"} / y',
      'x{namespace="team-a"} / y{namespace="team-a"}',
    ],
    ['braces holding only a comment', 'x{ # none\n}', 'x{namespace="team-a" # none\n}'],
    ['a # inside a string is not a comment', 'x{job="a#b"} # c', 'x{namespace="team-a",job="a#b"} # c'],
    [
      'multi-line query',
      'sum by (pod) (\n  x\n) # per pod\n/ 100',
      'sum by (pod) (\n  x{namespace="team-a"}\n) # per pod\n/ 100',
    ],
    [
      'Inf and NaN in any case are numbers',
      'x > INF or x < -inf or nan',
      'x{namespace="team-a"} > INF or x{namespace="team-a"} < -inf or nan',
    ],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    expect(rewrite(input)).toBe(expected);
  });

  it('rewrites the built-in queries (they already carry the own namespace) without changing them', () => {
    for (const template of Object.values(defaultTemplates('app_'))) {
      for (const text of [template.expr, template.freshness]) {
        const rendered = renderTemplate(text, { namespace: NS, deployment: 'api' });
        expect(rewrite(rendered)).toBe(rendered);
      }
    }
  });

  it('escapes the namespace it injects', () => {
    expect(enforceNamespace('x', 'a"b\\c')).toEqual({ ok: true, expr: 'x{namespace="a\\"b\\\\c"}' });
  });
});

describe('enforceNamespace: refuses what it cannot rewrite safely, saying what to fix', () => {
  const cases: readonly (readonly [string, string, string])[] = [
    ['another namespace', 'up{namespace="team-b"}', 'reads namespace "team-b", not this policy\'s namespace "team-a"'],
    ['another namespace in a second selector', 'a + b{namespace="kube-system"}', 'reads namespace "kube-system"'],
    ['empty namespace', 'up{namespace=""}', 'reads namespace ""'],
    ['namespace regex', 'up{namespace=~"team-.*"}', 'matches namespace =~ "team-.*"'],
    [
      'namespace regex even if it would match',
      'up{namespace=~"team-a"}',
      'write namespace="team-a" or leave the namespace matcher out',
    ],
    ['negative namespace matcher', 'up{namespace!="team-b"}', 'matches namespace != "team-b"'],
    ['another namespace as a quoted label name', '{"namespace"="team-b"}', 'reads namespace "team-b"'],
    ['own and another namespace', 'x{namespace="team-a",namespace="team-b"}', 'reads namespace "team-b"'],
    ['own namespace and a regex on it', 'x{namespace="team-a","namespace"=~".*"}', 'matches namespace =~ ".*"'],
    ['another namespace behind an escape', 'x{namespace="team-\\x62"}', 'reads namespace "team-\\x62"'],
    ['another namespace inside a subquery', 'max_over_time(x{namespace="team-b"}[5m:])', 'reads namespace "team-b"'],
    ['unterminated string', 'up{job="x}', 'the string at character 8 is not terminated'],
    ['string whose closing quote is escaped', 'x + "abc\\"', 'is not terminated'],
    ['unknown escape', 'x{job="\\q"}', 'unknown escape \\q'],
    ['unbalanced brace', 'up{job="x"', 'ends before the "{" at character 3 is closed'],
    ['unbalanced paren', 'max(up', 'ends before the "(" at character 4 is closed'],
    ['unbalanced bracket', 'rate(x[5m', 'ends before the "[" at character 7 is closed'],
    ['stray close paren', 'up)', 'unexpected ")" at character 3'],
    ['unknown character', 'up{job="x"}; drop', 'unexpected ";"'],
    ['a template placeholder left over', 'up{namespace=$namespace}', 'unexpected "$"'],
    ['a selector inside a range', 'x[5m{a="b"}]', 'unexpected "{"'],
    ['matchers without commas', 'x{a="1" b="2"}', 'unexpected "b"'],
    ['a label without a value', 'x{a=}', 'unexpected "}"'],
    ['an operator without its right side', 'x +', 'ends before it is complete'],
    ['an empty query', ' ', 'it is empty'],
    ['upper-case function name', 'ABS(x)', 'unexpected "("'],
    // Prometheus reads these as metric names; the grammar does not, so they are refused with a way out.
    ['on as a metric', 'max(on)', 'a metric named on must be written {__name__="on"}'],
    ['bool as a metric', 'bool', '{__name__="bool"}'],
    ['offset as a metric', 'x + offset', '{__name__="offset"}'],
  ];
  it.each(cases)('%s', (_name, input, fragment) => {
    expect(refusal(input)).toContain(fragment);
  });
});

describe('enforceNamespace: properties', () => {
  const metric = fc.constantFrom('up', 'x', 'db_pool_utilization_percent', 'job:rate:sum');
  const matcher = fc
    .tuple(
      fc.constantFrom('job', 'pod', 'instance', '__name__'),
      fc.constantFrom('=', '!=', '=~', '!~'),
      fc.constantFrom('"a"', '"api-.*"', "'x'", '`y`', '"team-b"'),
    )
    .map(([l, op, v]) => `${l}${op}${v}`);
  const selector = fc
    .tuple(
      metric,
      fc.option(fc.array(matcher, { maxLength: 3 }), { nil: undefined }),
      fc.option(fc.constantFrom('[5m]', '[1m:10s]'), { nil: undefined }),
    )
    .map(([m, ms, range]) => `${m}${ms === undefined ? '' : `{${ms.join(',')}}`}${range ?? ''}`);
  const expr: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
    e: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      selector,
      fc.tuple(fc.constantFrom('sum', 'max', 'rate', 'abs'), tie('e')).map(([f, e]) => `${f}(${e})`),
      fc.tuple(fc.constantFrom('sum by (pod)', 'max without (instance)'), tie('e')).map(([f, e]) => `${f} (${e})`),
      fc
        .tuple(tie('e'), fc.constantFrom(' + ', ' / on (pod) ', ' and ', ' > bool '), tie('e'))
        .map(([a, op, b]) => `${a}${op}${b}`),
      fc.integer({ min: 0, max: 100 }).map(String),
    ),
  })).e;

  it('every selector of the output carries exactly the own namespace; a second pass changes nothing', () => {
    fc.assert(
      fc.property(expr, (e) => {
        const once = rewrite(e);
        expect(rewrite(once)).toBe(once);
        // Every '{' opens a selector whose first matcher is the own namespace.
        const opened = once.split('{').length - 1;
        expect(once.split('{namespace="team-a"').length - 1).toBe(opened);
        // Removing the injected matchers gives the input back.
        expect(once.replaceAll('{namespace="team-a"}', '').replaceAll('namespace="team-a",', '')).toBe(
          e.replaceAll('{}', ''),
        );
      }),
      { numRuns: 500 },
    );
  });

  it('never throws, whatever the text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), fc.string({ maxLength: 20 }), (text, ns) => {
        const result = enforceNamespace(text, ns);
        expect(typeof result.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });
});

// The rewriting judged by Prometheus itself: promtool evaluates the original query over team-a's
// series alone and the rewritten one over the series of team-a and team-b; they must agree.
describe('enforceNamespace: promtool evaluates rewritten queries over two namespaces', () => {
  interface InputSeries {
    readonly series: string;
    readonly values: string;
  }
  /** Metric names, keywords among them (`on` can only be written {__name__="on"}). */
  const METRICS = ['x', 'y', 'sum', 'by', 'and', 'without', 'start', 'end', 'on'];
  /** team-b has more pods and larger values, so any series of it read shows in the result. */
  const PODS: Readonly<Record<string, readonly (readonly [string, number])[]>> = {
    'team-a': [
      ['a-1', 1],
      ['a-2', 2],
    ],
    'team-b': [
      ['b-1', 10],
      ['b-2', 20],
      ['b-3', 30],
    ],
  };
  const seriesOf = (namespaces: readonly string[]): InputSeries[] =>
    namespaces.flatMap((namespace) =>
      (PODS[namespace] ?? []).flatMap(([pod, slope]) => [
        ...METRICS.map((metric, i) => ({
          series: `{__name__="${metric}",namespace="${namespace}",pod="${pod}"}`,
          values: `0+${slope * (i + 1)}x20`,
        })),
        { series: `req_bucket{namespace="${namespace}",pod="${pod}",le="0.5"}`, values: `0+${slope}x20` },
        { series: `req_bucket{namespace="${namespace}",pod="${pod}",le="+Inf"}`, values: `0+${slope * 3}x20` },
      ]),
    );

  /**
   * Evaluates each query with `promtool test rules` at 10m over `series`: the samples of each, as
   * promtool prints them, sorted. promtool prints the samples of every query whose result differs
   * from the (empty) expected one.
   */
  function evaluate(series: readonly InputSeries[], exprs: readonly string[]): Map<string, string[]> {
    const dir = mkdtempSync(join(tmpdir(), 'promql-namespace-'));
    try {
      const file = join(dir, 'queries.test.yaml');
      const promqlTests = exprs.map((expr) => ({ expr, eval_time: '10m', exp_samples: [] }));
      writeFileSync(
        file,
        dump({
          evaluation_interval: '1m',
          tests: [{ interval: '1m', input_series: series, promql_expr_test: promqlTests }],
        }),
      );
      const run = promtool(['test', 'rules', file]);
      const results = new Map(exprs.map((expr) => [expr, [] as string[]]));
      const blocks = run.output.split(/^ {4}expr: /m).slice(1);
      if (run.status !== 0 && blocks.length === 0) throw new Error(`promtool failed: ${run.output}`);
      for (const block of blocks) {
        const parsed = /^("(?:[^"\\]|\\.)*"), time: [^,\n]*,(?: err: (.*)|\n\s*exp: .*\n\s*got: (.*))/.exec(block);
        if (parsed?.[1] === undefined) throw new Error(`unexpected promtool output: ${block}`);
        const expr = JSON.parse(parsed[1]) as string;
        if (parsed[2] !== undefined) throw new Error(`promtool could not evaluate ${expr}: ${parsed[2]}`);
        results.set(expr, (parsed[3]?.match(/\{[^}]*\} [^,\s]+/g) ?? []).sort());
      }
      return results;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Queries that read every namespace if a selector is missed; the first four are issue 10's. */
  const LEAKY = ['max(sum)', 'max(by)', 'count(and)', 'sum BY (pod) (x)'];
  const QUERIES = [
    ...LEAKY,
    'x and and',
    'max without (pod) (without)',
    'start - end',
    'sum(sum) by (sum)',
    'max({__name__="on"})',
    'count({__name__=~"s.*"})',
    'rate(x[5m])',
    'max_over_time(rate(x[2m])[10m:1m])',
    'x offset 1m',
    'x @ 300',
    'sum(x @ end()) + count(y offset 2m)',
    'x / on (pod) group_left y',
    'x > bool 25',
    'x unless y{pod="a-1"}',
    'topk(1, x)',
    'count_values("v", x)',
    'label_replace(x, "p", "$1", "pod", "(.*)")',
    'SUM(x) WITHOUT (pod)',
    'histogram_quantile(0.9, sum by (le) (rate(req_bucket[5m])))',
    'time() - timestamp(x)',
    '-x ^ 2',
    'scalar(max(sum)) * count(and)',
    'x{namespace="team-a"} + on (pod) y',
    'sum(x) by (namespace)',
    'vector(1)',
  ];
  const NS_RESULTS = {
    own: evaluate(seriesOf(['team-a']), QUERIES),
    both: evaluate(seriesOf(['team-a', 'team-b']), QUERIES),
  };
  const rewritten = QUERIES.map((q) => rewrite(q));
  const confined = evaluate(seriesOf(['team-a', 'team-b']), rewritten);

  it.each(QUERIES.map((q, i) => [q, rewritten[i] ?? '']))(
    '%s: rewritten as %s, it sees only team-a',
    (query, rewrittenQuery) => {
      const expected = NS_RESULTS.own.get(query);
      expect(expected).not.toEqual([]);
      expect(confined.get(rewrittenQuery)).toEqual(expected);
    },
  );

  it.each(LEAKY)('%s: run as written, it reads team-b too', (query) => {
    expect(NS_RESULTS.both.get(query)).not.toEqual(NS_RESULTS.own.get(query));
  });
});
