// Structural checks of crds/poolpilot.io_poolpolicies.yaml, and agreement between
// the CRD schema and the zod schema in src/api/v1alpha1/poolpolicy.ts (fields,
// required, types, bounds, patterns, enums, defaults). CEL rules cannot be run
// here; their presence and messages are checked, their logic is mirrored by the
// zod refinements tested in poolpolicy.test.ts.
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

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function obj(value: unknown, where: string): Json {
  if (!isObject(value)) throw new Error(`${where}: expected an object`);
  return value;
}

const crdPath = fileURLToPath(new URL('../../../crds/poolpilot.io_poolpolicies.yaml', import.meta.url));
const crd = obj(load(readFileSync(crdPath, 'utf8')), 'crd');
const crdSpec = obj(crd.spec, 'spec');
const versions = crdSpec.versions as unknown[];
const version = obj(versions[0], 'versions[0]');
const root = obj(obj(version.schema, 'schema').openAPIV3Schema, 'openAPIV3Schema');
const rootProps = obj(root.properties, 'properties');
const specSchema = obj(rootProps.spec, 'spec');
const statusSchema = obj(rootProps.status, 'status');

/** Visits every schema node below `node` (properties, items, additionalProperties) with its path. */
function walk(node: Json, path: string, visit: (node: Json, path: string) => void): void {
  visit(node, path);
  if (isObject(node.properties)) {
    for (const [key, child] of Object.entries(node.properties)) walk(obj(child, `${path}.${key}`), `${path}.${key}`, visit);
  }
  if (isObject(node.items)) walk(node.items, `${path}[]`, visit);
  if (isObject(node.additionalProperties)) walk(node.additionalProperties, `${path}{}`, visit);
}

function allNodes(node: Json, path: string): [string, Json][] {
  const out: [string, Json][] = [];
  walk(node, path, (n, p) => out.push([p, n]));
  return out;
}

const specNodes = allNodes(specSchema, 'spec');
const statusNodes = allNodes(statusSchema, 'status');

function celRules(node: Json): { rule: string; message: string }[] {
  const rules = node['x-kubernetes-validations'];
  if (!Array.isArray(rules)) return [];
  return rules.map((r: unknown) => {
    const rule = obj(r, 'rule');
    return { rule: String(rule.rule), message: String(rule.message) };
  });
}

function nodeAt(path: string): Json {
  const found = [...specNodes, ...statusNodes].find(([p]) => p === path);
  if (found === undefined) throw new Error(`no schema node at ${path}`);
  return found[1];
}

describe('CRD metadata', () => {
  it('names, scope and version', () => {
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.kind).toBe('CustomResourceDefinition');
    expect(obj(crd.metadata, 'metadata').name).toBe(`${POOLPOLICY_PLURAL}.${POOLPOLICY_GROUP}`);
    expect(crdSpec.group).toBe(POOLPOLICY_GROUP);
    expect(crdSpec.scope).toBe('Namespaced');
    expect(crdSpec.names).toMatchObject({ kind: POOLPOLICY_KIND, plural: POOLPOLICY_PLURAL, singular: 'poolpolicy', shortNames: ['pp'] });
    expect(versions).toHaveLength(1);
    expect(version).toMatchObject({ name: POOLPOLICY_VERSION, served: true, storage: true, subresources: { status: {} } });
  });

  it('printer columns', () => {
    const columns = (version.additionalPrinterColumns as unknown[]).map((c) => {
      const col = obj(c, 'column');
      return [col.name, col.jsonPath];
    });
    expect(columns).toEqual([
      ['Target', '.spec.targetRef.name'],
      ['Mode', '.spec.mode'],
      ['DB Pool', '.status.current.DB_POOL_SIZE'],
      ['Redis Max', '.status.current.REDIS_MAX_CONNECTIONS'],
      ['DB Util', '.status.observed.database'],
      ['Ready', '.status.conditions[?(@.type=="Ready")].status'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
  });
});

describe('CRD schema structure', () => {
  it.each([...specNodes, ...statusNodes])('%s has a description', (_path, node) => {
    expect(typeof node.description).toBe('string');
    expect(String(node.description).length).toBeGreaterThan(10);
  });

  it('spec and status have a type on every node', () => {
    for (const [path, node] of [...specNodes, ...statusNodes]) expect([path, typeof node.type]).toEqual([path, 'string']);
  });

  it('never preserves unknown fields', () => {
    expect(JSON.stringify(crd)).not.toContain('x-kubernetes-preserve-unknown-fields');
  });

  it('uses additionalProperties only for status.current and status.recommended (integers)', () => {
    const withAdditional = [...specNodes, ...statusNodes].filter(([, n]) => n.additionalProperties !== undefined);
    expect(withAdditional.map(([p]) => p)).toEqual(['status.current', 'status.recommended']);
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

  it('has a "min must be <= max" rule on every bounds object', () => {
    const boundsObjects = specNodes.filter(([, n]) => isObject(n.properties) && 'min' in n.properties && 'max' in n.properties);
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
    expect(celRules(specSchema).map((r) => r.message)).toContain('set at least one of spec.database, spec.redis or spec.pgbouncer');
    expect(celRules(nodeAt('spec.thresholds'))).toContainEqual({
      rule: 'self.scaleDownBelow < self.target && self.target < self.scaleUpAbove',
      message: 'thresholds must satisfy scaleDownBelow < target < scaleUpAbove',
    });
    expect(celRules(nodeAt('spec.interval'))[0]?.rule).toBe("duration(self) >= duration('1s')");
    expect(celRules(nodeAt('spec.prometheus.timeout'))[0]?.rule).toBe("duration(self) > duration('0s')");
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
    expect(Object.keys(obj(statusSchema.properties, 'status')).sort()).toEqual(
      ['breaches', 'conditions', 'current', 'history', 'lastChange', 'observed', 'observedGeneration', 'recommended'].sort(),
    );
    expect(nodeAt('status.history').maxItems).toBe(10);
  });
});

// ---------------------------------------------------------------------------
// Agreement with zod

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

const zodJson = obj(z.toJSONSchema(PoolPolicySpecSchema, { io: 'input', target: 'draft-2020-12' }), 'zod');
const zodNodes = new Map(allNodes(zodJson, 'spec'));

describe('CRD spec agrees with the zod schema', () => {
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

describe('CRD defaults agree with the zod defaults', () => {
  const inputs: readonly (readonly [string, Json])[] = [
    ['redis only', { targetRef: { name: 'a' }, redis: { maxConnections: { min: 1, max: 2 } } }],
    ['database with overflow', { targetRef: { name: 'a' }, database: { poolSize: { min: 1, max: 2 }, maxOverflow: { min: 0, max: 4 } } }],
    [
      'pgbouncer with prometheus',
      {
        targetRef: { name: 'a' },
        prometheus: {},
        pgbouncer: { configMapRef: { name: 'c' }, defaultPoolSize: { min: 1, max: 2 }, maxClientConn: { min: 1, max: 40 } },
      },
    ],
    ['budgetRef, processesPerPod and pgbouncer pools', { targetRef: { name: 'a' }, budgetRef: { name: 'b' }, processesPerPod: 4, pgbouncer: { configMapRef: { name: 'c' }, defaultPoolSize: { min: 1, max: 2 }, pools: 3 } }],
    ['partial thresholds and behavior', { targetRef: { name: 'a' }, redis: { maxConnections: { min: 1, max: 2 } }, thresholds: { target: 70 }, behavior: { maxStepPercent: 5 } }],
  ];
  it.each(inputs)('%s', (_name, input) => {
    expect(applyCrdDefaults(specSchema, input)).toEqual(PoolPolicySpecSchema.parse(input));
  });
});
