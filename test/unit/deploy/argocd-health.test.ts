import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { load } from 'js-yaml';

// deploy/argocd/poolpilot-health.lua, run by a real Lua (Debian package `lua5.4`) through
// deploy/argocd/test/harness.lua with sample PoolPolicies as Argo CD's `obj`.

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const script = join(root, 'deploy/argocd/poolpilot-health.lua');
const harness = join(root, 'deploy/argocd/test/harness.lua');

type LuaValue = string | number | boolean | null | undefined | LuaValue[] | { [key: string]: LuaValue };

/** A Lua table constructor for a JSON-like value (arrays become sequences, as Argo CD's are). */
function toLua(value: LuaValue): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `{${value.map(toLua).join(', ')}}`;
  return `{${Object.entries(value)
    .map(([k, v]) => `[${JSON.stringify(k)}] = ${toLua(v)}`)
    .join(', ')}}`;
}

function health(obj: LuaValue): { status: string; message: string } {
  let out: string;
  try {
    out = execFileSync('lua5.4', [harness, script], { input: toLua(obj), encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    const e = err as { code?: string; stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error('lua5.4 is not on PATH: install the Debian package `lua5.4` (apt-get install lua5.4)');
    throw new Error(`lua5.4 failed: ${e.stderr ?? String(err)}`);
  }
  const [status = '', message = ''] = out.replace(/\n$/, '').split('\n');
  return { status, message: message.replace(/\\(n|\\)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\')) };
}

const ready = (status: string, reason: string, message: string, observedGeneration?: number): LuaValue => ({
  type: 'Ready',
  status,
  reason,
  message,
  lastTransitionTime: '2026-01-01T00:00:00Z',
  observedGeneration,
});
const limited: LuaValue = {
  type: 'Limited',
  status: 'True',
  reason: 'AtMax',
  message: 'DB_POOL_SIZE at max 50',
  lastTransitionTime: '2026-01-01T00:00:00Z',
  observedGeneration: 3,
};
const metricsDown: LuaValue = {
  type: 'MetricsAvailable',
  status: 'False',
  reason: 'NoData',
  message: 'the query returned no series',
  lastTransitionTime: '2026-01-01T00:00:00Z',
  observedGeneration: 3,
};
const policy = (status: LuaValue, generation = 3): LuaValue => ({
  apiVersion: 'poolpilot.io/v1alpha1',
  kind: 'PoolPolicy',
  metadata: { name: 'api', namespace: 'prod', generation },
  spec: { targetRef: { name: 'api' } },
  status,
});

describe('Argo CD health check for PoolPolicy', () => {
  it.each<[string, LuaValue, { status: string; message: string }]>([
    [
      'Ready=True for the current generation',
      policy({ observedGeneration: 3, conditions: [ready('True', 'Reconciled', 'DB_POOL_SIZE=20', 3), limited] }),
      { status: 'Healthy', message: 'DB_POOL_SIZE=20' },
    ],
    [
      'Ready=True with AtMax and metrics unavailable (alerts, not health)',
      policy({ observedGeneration: 3, conditions: [limited, metricsDown, ready('True', 'Reconciled', 'holding', 3)] }),
      { status: 'Healthy', message: 'holding' },
    ],
    [
      'Ready=True with an empty message: the reason',
      policy({ observedGeneration: 3, conditions: [ready('True', 'Paused', '', 3)] }),
      { status: 'Healthy', message: 'Paused' },
    ],
    [
      'Ready=False: Degraded with the condition message',
      policy({
        observedGeneration: 3,
        conditions: [ready('False', 'TargetNotFound', 'Deployment prod/api not found', 3)],
      }),
      { status: 'Degraded', message: 'Deployment prod/api not found' },
    ],
    [
      'Ready=False with a multi-line message',
      policy({
        observedGeneration: 3,
        conditions: [ready('False', 'IniRefused', 'duplicate key default_pool_size\nat line 7', 3)],
      }),
      { status: 'Degraded', message: 'duplicate key default_pool_size\nat line 7' },
    ],
    [
      'Ready=False, observedGeneration only on status',
      policy({
        observedGeneration: 3,
        conditions: [ready('False', 'InvalidSpec', 'spec.database.poolSize: min > max')],
      }),
      { status: 'Degraded', message: 'spec.database.poolSize: min > max' },
    ],
    [
      'no status at all',
      policy(undefined),
      { status: 'Progressing', message: 'Waiting for poolpilot to report status' },
    ],
    [
      'an empty status',
      policy({}),
      { status: 'Progressing', message: 'Waiting for poolpilot to observe generation 3 (observed none)' },
    ],
    [
      'a new generation not yet observed (old Ready=True)',
      policy({ observedGeneration: 2, conditions: [ready('True', 'Reconciled', 'ok', 2)] }),
      { status: 'Progressing', message: 'Waiting for poolpilot to observe generation 3 (observed 2)' },
    ],
    [
      'a new generation not yet observed (old Ready=False is not Degraded)',
      policy({ observedGeneration: 2, conditions: [ready('False', 'InvalidSpec', 'bad', 2)] }),
      { status: 'Progressing', message: 'Waiting for poolpilot to observe generation 3 (observed 2)' },
    ],
    [
      'the Ready condition older than status.observedGeneration',
      policy({ observedGeneration: 3, conditions: [ready('True', 'Reconciled', 'ok', 2)] }),
      { status: 'Progressing', message: 'Waiting for poolpilot to observe generation 3 (observed 2)' },
    ],
    [
      'observed, but no Ready condition',
      policy({ observedGeneration: 3, conditions: [limited] }),
      { status: 'Progressing', message: 'Waiting for the Ready condition' },
    ],
    [
      'observed, no conditions list',
      policy({ observedGeneration: 3 }),
      { status: 'Progressing', message: 'Waiting for the Ready condition' },
    ],
    [
      'Ready=Unknown',
      policy({ observedGeneration: 3, conditions: [ready('Unknown', 'Reconciling', 'first pass', 3)] }),
      { status: 'Progressing', message: 'first pass' },
    ],
  ])('%s', (_name, obj, expected) => {
    expect(health(obj)).toEqual(expected);
  });

  it('argocd-cm-patch.yaml installs exactly poolpilot-health.lua under the PoolPolicy health key', () => {
    const cm = load(readFileSync(join(root, 'deploy/argocd/argocd-cm-patch.yaml'), 'utf8')) as {
      kind: string;
      metadata: { name: string; namespace: string };
      data: Record<string, string>;
    };
    expect(cm.kind).toBe('ConfigMap');
    expect(cm.metadata).toMatchObject({ name: 'argocd-cm', namespace: 'argocd' });
    expect(Object.keys(cm.data)).toEqual(['resource.customizations.health.poolpilot.io_PoolPolicy']);
    expect(cm.data['resource.customizations.health.poolpilot.io_PoolPolicy']).toBe(readFileSync(script, 'utf8'));
  });
});
