import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  databaseUtilizationQuery,
  defaultTemplates,
  escapePromqlString,
  escapeRegex,
  namespaceUtilizationQuery,
  overrideUtilizationQuery,
  pgbouncerUtilizationQuery,
  podPattern,
  redisUtilizationQuery,
  renderTemplate,
  utilizationQueryFor,
} from '../../../src/adapters/prometheus-queries.js';

/**
 * Reads one PromQL string literal body (what lies between the quotes) the way Prometheus's
 * lexer and unquoter do for the escapes escapePromqlString emits; undefined when the body
 * would end the literal early (an unescaped quote or a raw newline) or holds an unknown escape.
 */
function unquoteBody(body: string, quote: '"' | "'"): string | undefined {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const ch = body.charAt(i);
    if (ch === quote || ch === '\n') return undefined;
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = body.charAt(++i);
    if (next === '\\' || next === quote) out += next;
    else if (next === 'n') out += '\n';
    else if (next === 'r') out += '\r';
    else return undefined;
  }
  return out;
}

const ns = { namespace: 'prod', deployment: 'api' };

describe('escapePromqlString', () => {
  it.each([
    ['prod', 'prod'],
    ['a"b', 'a\\"b'],
    ['a\\b', 'a\\\\b'],
    ['a\\"}', 'a\\\\\\"}'],
    ['x\ny\rz', 'x\\ny\\rz'],
    ["it's", "it's"],
    ['', ''],
  ])('%j -> %j', (input, expected) => {
    expect(escapePromqlString(input)).toBe(expected);
  });

  it("escapes the single quote (and not the double one) for '…' literals", () => {
    expect(escapePromqlString(`it's "x"`, "'")).toBe(`it\\'s "x"`);
  });

  it('always yields a literal body that reads back as the input (fuzz)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.constantFrom<'"' | "'">('"', "'"), (s, quote) => {
        expect(unquoteBody(escapePromqlString(s, quote), quote)).toBe(s);
      }),
    );
  });
});

describe('escapeRegex', () => {
  it.each([
    ['api', 'api'],
    ['api.v2', 'api\\.v2'],
    ['a+b*c?(d)|[e]{f}^$\\', 'a\\+b\\*c\\?\\(d\\)\\|\\[e\\]\\{f\\}\\^\\$\\\\'],
  ])('%j -> %j', (input, expected) => {
    expect(escapeRegex(input)).toBe(expected);
  });

  it('matches exactly the input (fuzz, JS regex agrees with RE2 on these escapes)', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (s, other) => {
        const re = new RegExp(`^(?:${escapeRegex(s)})$`);
        expect(re.test(s)).toBe(true);
        if (other !== s) expect(re.test(other)).toBe(false);
      }),
    );
  });
});

describe('renderTemplate', () => {
  it.each<[string, string, { namespace: string; deployment: string }, string]>([
    ['equality and regex matchers', '{namespace="$namespace",pod=~"$deployment-.*"}', ns, '{namespace="prod",pod=~"api-.*"}'],
    ['braced placeholders', 'x{namespace="${namespace}",d="${deployment}"}', ns, 'x{namespace="prod",d="api"}'],
    ['a dot is regex-escaped only in regex matchers', '{d="$deployment",pod=~"$deployment-.*",q!~ "$deployment"}', { namespace: 'n', deployment: 'api.v2' }, '{d="api.v2",pod=~"api\\\\.v2-.*",q!~ "api\\\\.v2"}'],
    ['a quote and a backslash cannot end the literal', '{namespace="$namespace"}', { namespace: 'a"}) or vector(1) #\\', deployment: 'd' }, '{namespace="a\\"}) or vector(1) #\\\\"}'],
    ["single-quoted literals escape the single quote", "{namespace='$namespace'}", { namespace: `it's "x"`, deployment: 'd' }, `{namespace='it\\'s "x"'}`],
    ['raw literals with a placeholder become "…" literals', '{namespace=`$namespace\\x`,pod=~`$deployment.*`}', { namespace: 'a`b', deployment: 'a.b' }, '{namespace="a`b\\\\x",pod=~"a\\\\.b.*"}'],
    ['raw literals without one are kept', 'x{a=`\\d`}', ns, 'x{a=`\\d`}'],
    ['a bare placeholder becomes a literal', 'x{namespace=$namespace,pod=~$deployment}', { namespace: 'n"s', deployment: 'a.b' }, 'x{namespace="n\\"s",pod=~"a\\\\.b"}'],
    ['$namespaces is not a placeholder', '{a="$namespaces",b="$deployment_x",c="$namespace-"}', ns, '{a="$namespaces",b="$deployment_x",c="prod-"}'],
    ['comments are left alone', 'x{a="$namespace"} # by $deployment "\n+ y', ns, 'x{a="prod"} # by $deployment "\n+ y'],
    ['escaped quotes inside a literal do not end it', '{a="\\"$namespace\\""}', ns, '{a="\\"prod\\""}'],
    ['no placeholders: unchanged', 'sum(rate(x[5m])) / on() group_left y', ns, 'sum(rate(x[5m])) / on() group_left y'],
  ])('%s', (_what, template, values, expected) => {
    expect(renderTemplate(template, values)).toBe(expected);
  });

  it('keeps every value inside its literal and matching itself (fuzz)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (namespace, deployment) => {
        const out = renderTemplate('{namespace="$namespace",pod=~"$deployment-.*"}', { namespace, deployment });
        const match = /^\{namespace="(.*)",pod=~"(.*)-\.\*"\}$/s.exec(out);
        expect(match).not.toBeNull();
        const [, nsBody = '', podBody = ''] = match ?? [];
        expect(unquoteBody(nsBody, '"')).toBe(namespace);
        const podRegex = unquoteBody(podBody, '"');
        expect(podRegex).toBeDefined();
        expect(new RegExp(`^(?:${podRegex ?? ''}-.*)$`, 's').test(`${deployment}-7d9f-abc`)).toBe(true);
      }),
    );
  });
});

describe('default queries', () => {
  const target = { namespace: 'prod', deployment: 'api' };
  const sel = '{namespace="prod",pod=~"api-.*"}';

  it('database: the busiest pod, freshness on the same selector', () => {
    expect(databaseUtilizationQuery('voiceassist_', target)).toEqual({
      expr: `max(voiceassist_db_pool_utilization_percent${sel})`,
      freshness: `max(timestamp(voiceassist_db_pool_utilization_percent${sel}))`,
    });
  });

  it('redis: in use over max, per pod', () => {
    expect(redisUtilizationQuery('voiceassist_', target)).toEqual({
      expr: `max(100 * voiceassist_redis_pool_in_use${sel} / voiceassist_redis_pool_max_connections${sel})`,
      freshness: `max(timestamp(voiceassist_redis_pool_in_use${sel}))`,
    });
  });

  it('pgbouncer: pgbouncer_exporter names, whole namespace, worst database', () => {
    const n = '{namespace="prod"}';
    expect(pgbouncerUtilizationQuery(target)).toEqual({
      expr:
        `100 * max((sum by (database) (pgbouncer_pools_server_active_connections${n}) + sum by (database) (pgbouncer_pools_client_waiting_connections${n}))` +
        ` / sum by (database) (pgbouncer_databases_pool_size${n}))`,
      freshness: `max(timestamp(pgbouncer_pools_server_active_connections${n}))`,
    });
  });

  it('an empty prefix gives the bare names', () => {
    expect(databaseUtilizationQuery('', target).expr).toBe(`max(db_pool_utilization_percent${sel})`);
  });

  it('refuses a prefix that is not a metric-name prefix', () => {
    expect(() => defaultTemplates('x{a="b"} or vector(1) or ')).toThrow(RangeError);
    expect(() => databaseUtilizationQuery('9x', target)).toThrow(/metricsPrefix "9x"/);
  });

  it('an override is rendered with the same rules and has no freshness query', () => {
    expect(overrideUtilizationQuery('max(my_util{ns="$namespace",pod=~"$deployment-.*"})', { namespace: 'prod', deployment: 'a.b' })).toEqual({
      expr: 'max(my_util{ns="prod",pod=~"a\\\\.b-.*"})',
    });
  });

  it('utilizationQueryFor picks the override when given, else the default', () => {
    expect(utilizationQueryFor('redis', 'max(x{namespace="$namespace"})', 'voiceassist_', target)).toEqual({ expr: 'max(x{namespace="prod"})' });
    expect(utilizationQueryFor('database', undefined, 'voiceassist_', target)).toEqual(databaseUtilizationQuery('voiceassist_', target));
    expect(utilizationQueryFor('redis', undefined, 'voiceassist_', target)).toEqual(redisUtilizationQuery('voiceassist_', target));
    expect(utilizationQueryFor('pgbouncer', undefined, 'voiceassist_', target)).toEqual(pgbouncerUtilizationQuery(target));
  });
});

describe('namespace-wide queries', () => {
  it('renders one query pair per namespace with a value per pod', () => {
    expect(namespaceUtilizationQuery('database', 'voiceassist_', 'prod')).toEqual({
      expr: 'max by (pod) (voiceassist_db_pool_utilization_percent{namespace="prod"})',
      freshness: 'max by (pod) (timestamp(voiceassist_db_pool_utilization_percent{namespace="prod"}))',
    });
    expect(namespaceUtilizationQuery('redis', '', 'prod').expr).toBe('max by (pod) (100 * redis_pool_in_use{namespace="prod"} / redis_pool_max_connections{namespace="prod"})');
  });

  it.each([
    ['api', 'api-7d9f-x', true],
    ['api', 'api-', true],
    ['api', 'apix-1', false],
    ['api', 'web-api-1', false],
    ['api.v2', 'api.v2-1', true],
    ['api.v2', 'apixv2-1', false],
  ])('deployment %s matches pod %s: %s (like PromQL pod=~"<deployment>-.*")', (deployment, pod, matches) => {
    expect(podPattern(deployment).test(pod)).toBe(matches);
  });
});
