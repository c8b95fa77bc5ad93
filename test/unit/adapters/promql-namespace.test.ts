import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { enforceNamespace } from '../../../src/adapters/promql-namespace.js';
import { defaultTemplates, renderTemplate } from '../../../src/adapters/prometheus-queries.js';

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
    ['own namespace already there: unchanged', 'up{namespace="team-a",pod=~"api-.*"}', 'up{namespace="team-a",pod=~"api-.*"}'],
    ['own namespace in single quotes', "up{namespace='team-a'}", "up{namespace='team-a'}"],
    ['range vector', 'rate(http_requests_total[5m])', 'rate(http_requests_total{namespace="team-a"}[5m])'],
    ['subquery', 'max_over_time(rate(x[1m])[30m:1m])', 'max_over_time(rate(x{namespace="team-a"}[1m])[30m:1m])'],
    ['offset and @', 'x offset -5m + y @ end()', 'x{namespace="team-a"} offset -5m + y{namespace="team-a"} @ end()'],
    ['aggregation with by before', 'sum by (pod, namespace) (x)', 'sum by (pod, namespace) (x{namespace="team-a"})'],
    ['aggregation with without after', 'max(x) without (instance)', 'max(x{namespace="team-a"}) without (instance)'],
    ['label names in lists are not metrics', 'a / on (pod) group_left (node) b', 'a{namespace="team-a"} / on (pod) group_left (node) b{namespace="team-a"}'],
    ['ignoring and group_right without a list', 'a * ignoring(x) group_right b', 'a{namespace="team-a"} * ignoring(x) group_right b{namespace="team-a"}'],
    ['binary keywords and bool', 'a > bool 3 and b or c unless d', 'a{namespace="team-a"} > bool 3 and b{namespace="team-a"} or c{namespace="team-a"} unless d{namespace="team-a"}'],
    ['numbers, Inf, NaN are not metrics', '100 * x / 1e3 + Inf - NaN + 0x1F', '100 * x{namespace="team-a"} / 1e3 + Inf - NaN + 0x1F'],
    ['string arguments untouched', 'label_replace(up, "dst", "$1", "src", "(.*)")', 'label_replace(up{namespace="team-a"}, "dst", "$1", "src", "(.*)")'],
    ['topk and count_values', 'topk(3, x) + count_values("v", y)', 'topk(3, x{namespace="team-a"}) + count_values("v", y{namespace="team-a"})'],
    ['metric names with colons', 'job:rate5m:sum', 'job:rate5m:sum{namespace="team-a"}'],
    ['keywords as label names inside braces', 'x{on="1",by="2"}', 'x{namespace="team-a",on="1",by="2"}'],
    ['comments kept', 'max(x) # the worst pod\n', 'max(x{namespace="team-a"}) # the worst pod\n'],
    ['no selector at all', 'vector(50)', 'vector(50)'],
    ['trailing comma in matchers', 'x{job="a",}', 'x{namespace="team-a",job="a",}'],
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
    ['namespace regex even if it would match', 'up{namespace=~"team-a"}', 'write namespace="team-a" or leave the namespace matcher out'],
    ['negative namespace matcher', 'up{namespace!="team-b"}', 'matches namespace != "team-b"'],
    ['quoted metric name', '{"http.requests"}', 'quoted names in selectors'],
    ['unterminated string', 'up{job="x}', 'unterminated string'],
    ['unbalanced brace', 'up{job="x"', 'unterminated {'],
    ['unbalanced paren', 'max(up', 'unbalanced ('],
    ['stray close paren', 'up)', 'unbalanced )'],
    ['unknown character', 'up{job="x"}; drop', 'unexpected character ";"'],
    ['a template placeholder left over', 'up{namespace=$namespace}', 'unexpected character "$"'],
    ['a selector inside a range', 'x[5m{a="b"}]', 'a [range] holds more than a duration'],
    ['matchers without commas', 'x{a="1" b="2"}', 'separated by ","'],
    ['a label without a value', 'x{a=}', 'no string value'],
  ];
  it.each(cases)('%s', (_name, input, fragment) => {
    expect(refusal(input)).toContain(fragment);
  });
});

describe('enforceNamespace: properties', () => {
  const metric = fc.constantFrom('up', 'x', 'db_pool_utilization_percent', 'job:rate:sum');
  const matcher = fc.tuple(fc.constantFrom('job', 'pod', 'instance', '__name__'), fc.constantFrom('=', '!=', '=~', '!~'), fc.constantFrom('"a"', '"api-.*"', "'x'", '`y`', '"team-b"'))
    .map(([l, op, v]) => `${l}${op}${v}`);
  const selector = fc.tuple(metric, fc.option(fc.array(matcher, { maxLength: 3 }), { nil: undefined }), fc.option(fc.constantFrom('[5m]', '[1m:10s]'), { nil: undefined }))
    .map(([m, ms, range]) => `${m}${ms === undefined ? '' : `{${ms.join(',')}}`}${range ?? ''}`);
  const expr: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
    e: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      selector,
      fc.tuple(fc.constantFrom('sum', 'max', 'rate', 'abs'), tie('e')).map(([f, e]) => `${f}(${e})`),
      fc.tuple(fc.constantFrom('sum by (pod)', 'max without (instance)'), tie('e')).map(([f, e]) => `${f} (${e})`),
      fc.tuple(tie('e'), fc.constantFrom(' + ', ' / on (pod) ', ' and ', ' > bool '), tie('e')).map(([a, op, b]) => `${a}${op}${b}`),
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
        expect(once.replaceAll('{namespace="team-a"}', '').replaceAll('namespace="team-a",', '')).toBe(e.replaceAll('{}', ''));
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
