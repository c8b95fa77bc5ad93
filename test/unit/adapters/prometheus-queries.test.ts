import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  databaseUtilizationQuery,
  defaultTemplates,
  deploymentPods,
  podOwner,
  escapePromqlString,
  escapeRegex,
  GENERATED_NAME_ALPHABET,
  namespaceUtilizationQuery,
  overrideUtilizationQuery,
  pgbouncerUtilizationQuery,
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

/** What `pod=~"$pods"` holds for deployment `api`, as the operator sends it. */
const API_PODS = '(?:api-[bcdfghjklmnpqrstvwxz2456789]{1,10}-)[bcdfghjklmnpqrstvwxz2456789]{5}';

/**
 * A pod name as Kubernetes makes it: the ReplicaSet `<deployment>-<hash>`, then generateName
 * `<replicaset>-` cut to 58 characters plus a 5-character suffix (apiserver storage/names).
 */
function kubernetesPodName(deployment: string, hash: string, suffix: string): string {
  return `${deployment}-${hash}-`.slice(0, 58) + suffix;
}

const generated = (minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc.stringMatching(new RegExp(`^[${GENERATED_NAME_ALPHABET}]{${minLength},${maxLength}}$`));
/** A DNS-1123 label or subdomain, as Deployment names are. */
const deploymentName = (maxLength: number): fc.Arbitrary<string> =>
  fc.stringMatching(/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/).filter((n) => n.length <= maxLength);

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
    [
      'equality and regex matchers',
      '{namespace="$namespace",pod=~"$deployment-.*"}',
      ns,
      '{namespace="prod",pod=~"api-.*"}',
    ],
    ['braced placeholders', 'x{namespace="${namespace}",d="${deployment}"}', ns, 'x{namespace="prod",d="api"}'],
    [
      'a dot is regex-escaped only in regex matchers',
      '{d="$deployment",pod=~"$deployment-.*",q!~ "$deployment"}',
      { namespace: 'n', deployment: 'api.v2' },
      '{d="api.v2",pod=~"api\\\\.v2-.*",q!~ "api\\\\.v2"}',
    ],
    [
      'a quote and a backslash cannot end the literal',
      '{namespace="$namespace"}',
      { namespace: 'a"}) or vector(1) #\\', deployment: 'd' },
      '{namespace="a\\"}) or vector(1) #\\\\"}',
    ],
    [
      'single-quoted literals escape the single quote',
      "{namespace='$namespace'}",
      { namespace: `it's "x"`, deployment: 'd' },
      `{namespace='it\\'s "x"'}`,
    ],
    [
      'raw literals with a placeholder become "…" literals',
      '{namespace=`$namespace\\x`,pod=~`$deployment.*`}',
      { namespace: 'a`b', deployment: 'a.b' },
      '{namespace="a`b\\\\x",pod=~"a\\\\.b.*"}',
    ],
    ['raw literals without one are kept', 'x{a=`\\d`}', ns, 'x{a=`\\d`}'],
    [
      'a bare placeholder becomes a literal',
      'x{namespace=$namespace,pod=~$deployment}',
      { namespace: 'n"s', deployment: 'a.b' },
      'x{namespace="n\\"s",pod=~"a\\\\.b"}',
    ],
    [
      '$namespaces is not a placeholder',
      '{a="$namespaces",b="$deployment_x",c="$namespace-"}',
      ns,
      '{a="$namespaces",b="$deployment_x",c="prod-"}',
    ],
    ['comments are left alone', 'x{a="$namespace"} # by $deployment "\n+ y', ns, 'x{a="prod"} # by $deployment "\n+ y'],
    ['escaped quotes inside a literal do not end it', '{a="\\"$namespace\\""}', ns, '{a="\\"prod\\""}'],
    ['no placeholders: unchanged', 'sum(rate(x[5m])) / on() group_left y', ns, 'sum(rate(x[5m])) / on() group_left y'],
    ["$pods: the regex of the Deployment's own pod names", 'x{pod=~"$pods"}', ns, `x{pod=~"${API_PODS}"}`],
    ['${pods}, and in a raw literal', 'x{pod=~"${pods}",p!~`$pods`}', ns, `x{pod=~"${API_PODS}",p!~"${API_PODS}"}`],
    [
      '$pods escapes the name for the regex once, the regex for the literal once',
      'x{pod=~"$pods"}',
      { namespace: 'n', deployment: 'api.v2' },
      'x{pod=~"(?:api\\\\.v2-[bcdfghjklmnpqrstvwxz2456789]{1,10}-)[bcdfghjklmnpqrstvwxz2456789]{5}"}',
    ],
    ['$podsx is not a placeholder', 'x{a="$podsx",b="$pods_"}', ns, 'x{a="$podsx",b="$pods_"}'],
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

  it("renders $pods as a literal that reads back as the regex of the Deployment's pods (fuzz)", () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), generated(1, 10), generated(5, 5), (deployment, hash, suffix) => {
        const out = renderTemplate('{pod=~"$pods"}', { namespace: 'n', deployment });
        const match = /^\{pod=~"(.*)"\}$/s.exec(out);
        const regex = unquoteBody(match?.[1] ?? '', '"');
        expect(regex).toBe(deploymentPods(deployment).regex);
        expect(new RegExp(`^(?:${regex ?? ''})$`).test(kubernetesPodName(deployment, hash, suffix))).toBe(true);
      }),
    );
  });
});

describe('default queries', () => {
  const target = { namespace: 'prod', deployment: 'api' };
  const sel = `{namespace="prod",pod=~"${API_PODS}"}`;

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

  it("pgbouncer: either exporter's names (prometheus-community, Debian's), whole namespace but the admin console, worst database", () => {
    const n = '{namespace="prod"}';
    const p = '{namespace="prod",database!="pgbouncer"}';
    expect(pgbouncerUtilizationQuery(target)).toEqual({
      expr:
        `100 * max((sum by (database) (pgbouncer_pools_server_active_connections${p}) + sum by (database) (pgbouncer_pools_client_waiting_connections${p}))` +
        ` / sum by (database) (pgbouncer_databases_pool_size${p})` +
        ` or (sum by (database) (pgbouncer_active_clients${p}) + sum by (database) (pgbouncer_waiting_clients${p}))` +
        ` / sum by (database) (pgbouncer_pool_size${p}))`,
      freshness: `max(timestamp(pgbouncer_pools_server_active_connections${n}) or timestamp(pgbouncer_active_clients${n}))`,
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
    expect(
      overrideUtilizationQuery('max(my_util{ns="$namespace",pod=~"$deployment-.*"})', {
        namespace: 'prod',
        deployment: 'a.b',
      }),
    ).toEqual({
      expr: 'max(my_util{ns="prod",pod=~"a\\\\.b-.*"})',
    });
  });

  it('utilizationQueryFor picks the override when given, else the default', () => {
    expect(utilizationQueryFor('redis', 'max(x{namespace="$namespace"})', 'voiceassist_', target)).toEqual({
      expr: 'max(x{namespace="prod"})',
    });
    expect(utilizationQueryFor('database', undefined, 'voiceassist_', target)).toEqual(
      databaseUtilizationQuery('voiceassist_', target),
    );
    expect(utilizationQueryFor('redis', undefined, 'voiceassist_', target)).toEqual(
      redisUtilizationQuery('voiceassist_', target),
    );
    expect(utilizationQueryFor('pgbouncer', undefined, 'voiceassist_', target)).toEqual(
      pgbouncerUtilizationQuery(target),
    );
  });
});

describe('namespace-wide queries', () => {
  it('renders one query pair per namespace with a value per pod', () => {
    expect(namespaceUtilizationQuery('database', 'voiceassist_', 'prod')).toEqual({
      expr: 'max by (pod) (voiceassist_db_pool_utilization_percent{namespace="prod"})',
      freshness: 'max by (pod) (timestamp(voiceassist_db_pool_utilization_percent{namespace="prod"}))',
    });
    expect(namespaceUtilizationQuery('redis', '', 'prod').expr).toBe(
      'max by (pod) (100 * redis_pool_in_use{namespace="prod"} / redis_pool_max_connections{namespace="prod"})',
    );
  });
});

describe("deploymentPods: exactly the Deployment's own pods, by name", () => {
  it.each([
    ['api', 'api-7c9b8d6f54-x2x9q', true],
    ['api', 'api-b-x2x9q', true],
    ['api', 'api-worker-5f6d8b7c9-x2x9q', false],
    ['api-worker', 'api-worker-5f6d8b7c9-x2x9q', true],
    ['api-worker', 'api-7c9b8d6f54-x2x9q', false],
    ['web', 'web-canary-7b5d4c8f9-k2j4x', false],
    ['web-canary', 'web-canary-7b5d4c8f9-k2j4x', true],
    ['web-canary', 'web-6d4cf56db6-9xg8k', false],
    ['web', 'web-6d4cf56db6-9xg8k', true],
    ['api', 'api-migrate-x2x9q', false], // a Job's pod: "migrate" is no template hash
    ['api', 'api-db-0', false], // a StatefulSet's pod
    ['api', 'api-7c9b8d6f54-x2x9', false], // generateName adds exactly 5 characters
    ['api', 'api-7c9b8d6f54-x2x9qz', false],
    ['api', 'api-7c9b8d6f54b-x2x9q', false], // a hash has at most 10 characters
    ['api', 'api-7c9b8d6f5a-x2x9q', false], // nor vowels
    ['api', 'api-7c9b8d6f54-abcde', false],
    ['api', 'api--x2x9q', false],
    ['api', 'api-7c9b8d6f54-x2x9q\n', false],
    ['api', 'apix-7c9b8d6f54-x2x9q', false],
    ['api', 'web-api-7c9b8d6f54-x2x9q', false],
    ['api.v2', 'api.v2-7c9b8d6f54-x2x9q', true],
    ['api.v2', 'apixv2-7c9b8d6f54-x2x9q', false],
  ])('deployment %s, pod %s: %s', (deployment, pod, expected) => {
    expect(deploymentPods(deployment).includes(pod)).toBe(expected);
  });

  it('describes the pods it looks for, for messages', () => {
    expect(deploymentPods('api').description).toBe(
      'the pods of deployment api (named api-<pod-template-hash>-<5 characters>)',
    );
  });

  it('has every pod name Kubernetes can give the Deployment, long names cut included (fuzz)', () => {
    fc.assert(
      fc.property(deploymentName(253), generated(1, 10), generated(5, 5), (deployment, hash, suffix) => {
        expect(deploymentPods(deployment).includes(kubernetesPodName(deployment, hash, suffix))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('names the owner its pod names imply whenever they are never cut, so a lookup by owner misses none (fuzz)', () => {
    fc.assert(
      fc.property(deploymentName(253), generated(1, 10), generated(5, 5), (deployment, hash, suffix) => {
        const { owner } = deploymentPods(deployment);
        expect(owner === undefined ? deployment.length > 46 : owner === deployment).toBe(true);
        if (owner !== undefined) expect(podOwner(kubernetesPodName(deployment, hash, suffix))).toBe(owner);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([46, 47, 50, 55, 56, 57, 58, 80])(
    'has the pods of a %i-character name, whatever the hash length',
    (length) => {
      const deployment = 'a'.repeat(length);
      for (let hashLength = 1; hashLength <= 10; hashLength++) {
        expect(
          deploymentPods(deployment).includes(kubernetesPodName(deployment, '7'.repeat(hashLength), 'x2x9q')),
        ).toBe(true);
      }
    },
  );

  it("never has another Deployment's pods when names are up to 46 characters (fuzz)", () => {
    fc.assert(
      fc.property(
        deploymentName(46),
        deploymentName(46),
        generated(1, 10),
        generated(5, 5),
        (deployment, other, hash, suffix) => {
          fc.pre(deployment !== other);
          expect(deploymentPods(deployment).includes(kubernetesPodName(other, hash, suffix))).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('never lends the pods of a Deployment named in up to 46 characters to one whose name begins or ends like it (fuzz: api / api-worker)', () => {
    const extras = fc.string({
      unit: fc.constantFrom('-', '.', 'a', 'o', 'b', 'c', 'x', '2', '4', '0'),
      maxLength: 60,
    });
    fc.assert(
      fc.property(
        deploymentName(46),
        extras,
        fc.nat(46),
        generated(1, 10),
        generated(5, 5),
        (own, extra, cut, hash, suffix) => {
          for (const reader of [`${own}${extra}`, own.slice(0, cut)]) {
            if (reader !== own)
              expect(deploymentPods(reader).includes(kubernetesPodName(own, hash, suffix))).toBe(false);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("the documented limit: a 57-character name keeps no hash, so its pods look like those of its first 46 to 55 characters' Deployment", () => {
    const short = 'a'.repeat(46);
    const long = `${short}-7c9b8d6f54`; // 57 characters: pods are `<long>-<suffix>`
    expect(deploymentPods(short).includes(kubernetesPodName(long, '4', 'x2x9q'))).toBe(true);
  });
});
