// Structural checks of the CRDs in crds/, and agreement between each CRD schema and its zod
// schema in src/api/v1alpha1/ (fields, required, types, bounds, patterns, enums, defaults).
// CEL rules cannot be run here; their presence and messages are checked, their logic is
// mirrored by the zod refinements tested in poolpolicy.test.ts and connectionbudget.test.ts.
import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import { z } from 'zod';
import {
  POOLPOLICY_GROUP,
  POOLPOLICY_KIND,
  POOLPOLICY_PLURAL,
  POOLPOLICY_VERSION,
  PoolPolicySpecSchema,
} from '../../../src/api/v1alpha1/poolpolicy.js';
import {
  CONNECTIONBUDGET_GROUP,
  CONNECTIONBUDGET_KIND,
  CONNECTIONBUDGET_PLURAL,
  CONNECTIONBUDGET_VERSION,
  ConnectionBudgetSpecSchema,
  MAX_SHARES,
} from '../../../src/api/v1alpha1/connectionbudget.js';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function obj(value: unknown, where: string): Json {
  if (!isObject(value)) throw new Error(`${where}: expected an object`);
  return value;
}

/** Visits every schema node below `node` (properties, items, additionalProperties) with its path. */
function walk(node: Json, path: string, visit: (node: Json, path: string) => void): void {
  visit(node, path);
  if (isObject(node.properties)) {
    for (const [key, child] of Object.entries(node.properties))
      walk(obj(child, `${path}.${key}`), `${path}.${key}`, visit);
  }
  if (isObject(node.items)) walk(node.items, `${path}[]`, visit);
  if (isObject(node.additionalProperties)) walk(node.additionalProperties, `${path}{}`, visit);
}

function allNodes(node: Json, path: string): [string, Json][] {
  const out: [string, Json][] = [];
  walk(node, path, (n, p) => out.push([p, n]));
  return out;
}

function celRules(node: Json): { rule: string; message: string; fieldPath?: string }[] {
  const rules = node['x-kubernetes-validations'];
  if (!Array.isArray(rules)) return [];
  return rules.map((r: unknown) => {
    const rule = obj(r, 'rule');
    return {
      rule: String(rule.rule),
      message: String(rule.message),
      ...(typeof rule.fieldPath === 'string' ? { fieldPath: rule.fieldPath } : {}),
    };
  });
}

/** One CRD file, parsed, with its schema nodes by path. */
function loadCrd(file: string) {
  const crd = obj(load(readFileSync(fileURLToPath(new URL(`../../../crds/${file}`, import.meta.url)), 'utf8')), file);
  const crdSpec = obj(crd.spec, 'spec');
  const versions = crdSpec.versions as unknown[];
  const version = obj(versions[0], 'versions[0]');
  const root = obj(obj(version.schema, 'schema').openAPIV3Schema, 'openAPIV3Schema');
  const rootProps = obj(root.properties, 'properties');
  const specSchema = obj(rootProps.spec, 'spec');
  const statusSchema = obj(rootProps.status, 'status');
  const specNodes = allNodes(specSchema, 'spec');
  const statusNodes = allNodes(statusSchema, 'status');
  const nodeAt = (path: string): Json => {
    const found = [...specNodes, ...statusNodes].find(([p]) => p === path);
    if (found === undefined) throw new Error(`no schema node at ${path}`);
    return found[1];
  };
  return { crd, crdSpec, versions, version, specSchema, statusSchema, specNodes, statusNodes, nodeAt };
}

/** Structural defaulting as the API server does it: absent fields with a default get it, then recurse. */
function applyCrdDefaults(schema: Json, value: unknown): unknown {
  if (!isObject(value) || !isObject(schema.properties)) return value;
  const out: Json = { ...value };
  for (const [key, child] of Object.entries(schema.properties)) {
    const childSchema = obj(child, key);
    if (out[key] === undefined && childSchema.default !== undefined) out[key] = structuredClone(childSchema.default);
    if (out[key] !== undefined) out[key] = applyCrdDefaults(childSchema, out[key]);
  }
  return out;
}

/** Subset of a schema node that both sides must agree on, in CRD (OpenAPI v3.0) terms. */
function comparable(node: Json, fromZod: boolean): Json {
  const out: Json = {};
  for (const key of ['type', 'enum', 'minLength', 'maxLength', 'minimum', 'maximum'] as const) {
    if (node[key] !== undefined) out[key] = node[key];
  }
  if (typeof node.pattern === 'string') out.pattern = node.pattern.replaceAll('\\/', '/');
  if (fromZod && typeof node.exclusiveMinimum === 'number') {
    out.minimum = node.exclusiveMinimum;
    out.exclusiveMinimum = true;
  } else if (node.exclusiveMinimum === true) {
    out.exclusiveMinimum = true;
  }
  if (node.default !== undefined) out.default = node.default;
  if (Array.isArray(node.required)) out.required = [...(node.required as string[])].sort();
  if (isObject(node.properties)) out.properties = Object.keys(node.properties).sort();
  return out;
}

interface CrdCase {
  readonly file: string;
  readonly group: string;
  readonly version: string;
  readonly names: {
    readonly kind: string;
    readonly plural: string;
    readonly singular: string;
    readonly shortNames: readonly string[];
  };
  readonly zodSchema: z.ZodType;
  readonly columns: readonly (readonly [string, string])[];
  readonly statusFields: readonly string[];
  /** Paths of the only nodes allowed to use additionalProperties (integers). */
  readonly additionalProperties: readonly string[];
  /** Spec inputs whose CRD defaulting must equal the zod defaulting. */
  readonly defaultsInputs: readonly (readonly [string, Json])[];
}

const CASES: readonly CrdCase[] = [
  {
    file: 'poolpilot.io_poolpolicies.yaml',
    group: POOLPOLICY_GROUP,
    version: POOLPOLICY_VERSION,
    names: { kind: POOLPOLICY_KIND, plural: POOLPOLICY_PLURAL, singular: 'poolpolicy', shortNames: ['pp'] },
    zodSchema: PoolPolicySpecSchema,
    columns: [
      ['Target', '.spec.targetRef.name'],
      ['Mode', '.spec.mode'],
      ['DB Pool', '.status.current.DB_POOL_SIZE'],
      ['Redis Max', '.status.current.REDIS_MAX_CONNECTIONS'],
      ['DB Util', '.status.observed.database'],
      ['Ready', '.status.conditions[?(@.type=="Ready")].status'],
      ['Age', '.metadata.creationTimestamp'],
    ],
    statusFields: [
      'breaches',
      'conditions',
      'current',
      'delivery',
      'history',
      'lastChange',
      'observed',
      'observedGeneration',
      'recommended',
    ],
    additionalProperties: [
      'status.current',
      'status.recommended',
      'status.delivery.written',
      'status.delivery.replaced',
    ],
    defaultsInputs: [
      ['redis only', { targetRef: { name: 'a' }, redis: { maxConnections: { min: 1, max: 2 } } }],
      [
        'database with overflow',
        { targetRef: { name: 'a' }, database: { poolSize: { min: 1, max: 2 }, maxOverflow: { min: 0, max: 4 } } },
      ],
      [
        'pgbouncer with prometheus',
        {
          targetRef: { name: 'a' },
          prometheus: {},
          pgbouncer: {
            configMapRef: { name: 'c' },
            defaultPoolSize: { min: 1, max: 2 },
            maxClientConn: { min: 1, max: 40 },
          },
        },
      ],
      [
        'budgetRef, processesPerPod and pgbouncer pools',
        {
          targetRef: { name: 'a' },
          budgetRef: { name: 'b' },
          processesPerPod: 4,
          pgbouncer: { configMapRef: { name: 'c' }, defaultPoolSize: { min: 1, max: 2 }, pools: 3 },
        },
      ],
      [
        'partial thresholds and behavior',
        {
          targetRef: { name: 'a' },
          redis: { maxConnections: { min: 1, max: 2 } },
          thresholds: { target: 70 },
          behavior: { maxStepPercent: 5 },
        },
      ],
      [
        'behavior blocks (selectPolicy defaults to Max)',
        {
          targetRef: { name: 'a' },
          redis: { maxConnections: { min: 1, max: 2 } },
          behavior: { scaleUp: { policies: [{ type: 'Connections', value: 4, period: '15s' }] }, scaleDown: {} },
        },
      ],
    ],
  },
  {
    file: 'poolpilot.io_connectionbudgets.yaml',
    group: CONNECTIONBUDGET_GROUP,
    version: CONNECTIONBUDGET_VERSION,
    names: {
      kind: CONNECTIONBUDGET_KIND,
      plural: CONNECTIONBUDGET_PLURAL,
      singular: 'connectionbudget',
      shortNames: ['cb'],
    },
    zodSchema: ConnectionBudgetSpecSchema,
    columns: [
      ['PG Capacity', '.status.postgres.capacity'],
      ['PG Allocated', '.status.postgres.allocated'],
      ['PG Headroom', '.status.postgres.headroom'],
      ['Redis Capacity', '.status.redis.capacity'],
      ['Redis Allocated', '.status.redis.allocated'],
      ['Redis Headroom', '.status.redis.headroom'],
      ['Ready', '.status.conditions[?(@.type=="Ready")].status'],
      ['Age', '.metadata.creationTimestamp'],
    ],
    statusFields: ['conditions', 'lastUpdated', 'observedGeneration', 'postgres', 'redis'],
    additionalProperties: [],
    defaultsInputs: [
      ['postgres fixed', { postgres: { maxConnections: 100 } }],
      [
        'postgres query and redis fixed',
        { postgres: { maxConnectionsQuery: 'pg_settings_max_connections' }, redis: { maxClients: 10000 } },
      ],
      [
        'redis query with prometheus',
        { redis: { maxClientsQuery: 'redis_config_maxclients', reserved: 5 }, prometheus: {} },
      ],
      [
        'explicit reserved and timeout',
        { postgres: { maxConnections: 50, reserved: 0 }, prometheus: { timeout: '3s' } },
      ],
    ],
  },
];

describe.each(CASES)('$file', (c) => {
  const { crd, crdSpec, versions, version, specSchema, statusSchema, specNodes, statusNodes, nodeAt } = loadCrd(c.file);

  describe('CRD metadata', () => {
    it('names, scope and version', () => {
      expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
      expect(crd.kind).toBe('CustomResourceDefinition');
      expect(obj(crd.metadata, 'metadata').name).toBe(`${c.names.plural}.${c.group}`);
      expect(crdSpec.group).toBe(c.group);
      expect(crdSpec.scope).toBe('Namespaced');
      expect(crdSpec.names).toMatchObject({ ...c.names, listKind: `${c.names.kind}List`, categories: ['poolpilot'] });
      expect(versions).toHaveLength(1);
      expect(version).toMatchObject({ name: c.version, served: true, storage: true, subresources: { status: {} } });
    });

    it('printer columns', () => {
      const columns = (version.additionalPrinterColumns as unknown[]).map((col) => {
        const column = obj(col, 'column');
        return [column.name, column.jsonPath];
      });
      expect(columns).toEqual(c.columns);
    });
  });

  describe('CRD schema structure', () => {
    it.each([...specNodes, ...statusNodes])('%s has a description', (_path, node) => {
      expect(typeof node.description).toBe('string');
      expect(String(node.description).length).toBeGreaterThan(10);
    });

    it('spec and status have a type on every node', () => {
      for (const [path, node] of [...specNodes, ...statusNodes])
        expect([path, typeof node.type]).toEqual([path, 'string']);
    });

    it('never preserves unknown fields', () => {
      expect(JSON.stringify(crd)).not.toContain('x-kubernetes-preserve-unknown-fields');
    });

    it('uses additionalProperties only where documented (integers)', () => {
      const withAdditional = [...specNodes, ...statusNodes].filter(([, n]) => n.additionalProperties !== undefined);
      expect(withAdditional.map(([p]) => p)).toEqual(c.additionalProperties);
      for (const [, node] of withAdditional) expect(obj(node.additionalProperties, 'ap').type).toBe('integer');
    });

    it('bounds every string (maxLength, enum or date-time) and every list (maxItems)', () => {
      for (const [path, node] of [...specNodes, ...statusNodes]) {
        if (node.type === 'string') {
          const bounded = typeof node.maxLength === 'number' || Array.isArray(node.enum) || node.format === 'date-time';
          expect([path, bounded]).toEqual([path, true]);
        }
        if (node.type === 'array') expect([path, typeof node.maxItems]).toEqual([path, 'number']);
      }
    });

    it('gives every CEL rule a message', () => {
      for (const [path, node] of specNodes) {
        for (const rule of celRules(node)) expect([path, rule.message.length > 10]).toEqual([path, true]);
      }
    });

    it('conditions are a map list keyed by type with the metav1.Condition fields', () => {
      const conditions = nodeAt('status.conditions');
      expect(conditions['x-kubernetes-list-type']).toBe('map');
      expect(conditions['x-kubernetes-list-map-keys']).toEqual(['type']);
      const item = obj(conditions.items, 'items');
      expect(Object.keys(obj(item.properties, 'p')).sort()).toEqual(
        ['lastTransitionTime', 'message', 'observedGeneration', 'reason', 'status', 'type'].sort(),
      );
      expect(obj(obj(item.properties, 'p').status, 's').enum).toEqual(['True', 'False', 'Unknown']);
    });

    it('status has the documented fields', () => {
      expect(Object.keys(obj(statusSchema.properties, 'status')).sort()).toEqual([...c.statusFields].sort());
    });
  });

  describe('CRD spec agrees with the zod schema', () => {
    const zodJson = obj(z.toJSONSchema(c.zodSchema, { io: 'input', target: 'draft-2020-12' }), 'zod');
    const zodNodes = new Map(allNodes(zodJson, 'spec'));

    it('has the same nodes', () => {
      expect(specNodes.map(([p]) => p).sort()).toEqual([...zodNodes.keys()].sort());
    });

    it.each(specNodes)('%s', (path, crdNode) => {
      const zodNode = zodNodes.get(path);
      expect(zodNode).toBeDefined();
      if (zodNode === undefined) return;
      // The CRD adds format: int32 to integers; zod encodes the same range as maximum.
      expect(comparable(crdNode, false)).toEqual(comparable(zodNode, true));
    });
  });

  describe('CRD defaults agree with the zod defaults', () => {
    it.each(c.defaultsInputs)('%s', (_name, input) => {
      expect(applyCrdDefaults(specSchema, input)).toEqual(c.zodSchema.parse(input));
    });
  });
});

describe('PoolPolicy CRD rules', () => {
  const { specSchema, specNodes, nodeAt } = loadCrd('poolpilot.io_poolpolicies.yaml');

  it('has a "min must be <= max" rule on every bounds object', () => {
    const boundsObjects = specNodes.filter(
      ([, n]) => isObject(n.properties) && 'min' in n.properties && 'max' in n.properties,
    );
    expect(boundsObjects.map(([p]) => p)).toEqual([
      'spec.database.poolSize',
      'spec.database.maxOverflow',
      'spec.redis.maxConnections',
      'spec.pgbouncer.defaultPoolSize',
      'spec.pgbouncer.maxClientConn',
    ]);
    for (const [, node] of boundsObjects) {
      expect(celRules(node)).toContainEqual({ rule: 'self.min <= self.max', message: 'min must be <= max' });
      expect(node.required).toEqual(['min', 'max']);
    }
  });

  it('has the cross-field CEL rules with messages saying what to fix', () => {
    expect(celRules(specSchema).map((r) => r.message)).toContain(
      'set at least one of spec.database, spec.redis or spec.pgbouncer',
    );
    expect(celRules(nodeAt('spec.thresholds'))).toContainEqual({
      rule: 'self.scaleDownBelow < self.target && self.target < self.scaleUpAbove',
      message: 'thresholds must satisfy scaleDownBelow < target < scaleUpAbove',
    });
    expect(celRules(nodeAt('spec.interval'))[0]?.rule).toBe("duration(self) >= duration('1s')");
    expect(celRules(nodeAt('spec.prometheus.timeout'))[0]?.rule).toBe("duration(self) > duration('0s')");
  });

  it('keeps at most 10 history entries', () => {
    expect(nodeAt('status.history').maxItems).toBe(10);
  });
});

describe('ConnectionBudget CRD rules', () => {
  const { specSchema, nodeAt } = loadCrd('poolpilot.io_connectionbudgets.yaml');

  it('requires postgres or redis', () => {
    expect(celRules(specSchema)).toEqual([
      { rule: 'has(self.postgres) || has(self.redis)', message: 'set spec.postgres or spec.redis' },
    ]);
  });

  it.each([
    ['postgres', 'maxConnections', 'maxConnectionsQuery'],
    ['redis', 'maxClients', 'maxClientsQuery'],
  ])('spec.%s: exactly one of %s and %s, reserved below the fixed value', (section, value, query) => {
    expect(celRules(nodeAt(`spec.${section}`))).toEqual([
      {
        rule: `has(self.${value}) || has(self.${query})`,
        message: `set spec.${section}.${value} or spec.${section}.${query}`,
      },
      {
        rule: `!has(self.${value}) || !has(self.${query})`,
        message: `set only one of ${value} and ${query}, not both`,
        fieldPath: `.${query}`,
      },
      {
        rule: `!has(self.${value}) || self.reserved < self.${value}`,
        message: `reserved must be less than ${value}`,
        fieldPath: '.reserved',
      },
    ]);
  });

  it.each(['postgres', 'redis'])(
    'status.%s has capacity, allocated, headroom (may be negative) and shares',
    (section) => {
      const node = nodeAt(`status.${section}`);
      expect(node.required).toEqual(['capacity', 'allocated', 'headroom', 'shares']);
      expect(nodeAt(`status.${section}.headroom`).minimum).toBeUndefined();
      const shares = nodeAt(`status.${section}.shares`);
      expect(shares.maxItems).toBe(MAX_SHARES);
      expect(shares['x-kubernetes-list-type']).toBe('map');
      expect(shares['x-kubernetes-list-map-keys']).toEqual(['policy']);
      expect(Object.keys(obj(obj(shares.items, 'items').properties, 'p'))).toEqual([
        'policy',
        'replicas',
        'connections',
        'limited',
      ]);
      expect(nodeAt(`status.${section}.shares[].limited`).type).toBe('boolean');
    },
  );
});
