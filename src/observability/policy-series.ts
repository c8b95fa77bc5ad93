/**
 * The per-policy series of /metrics, `poolpilot_setting_value` and `poolpilot_policy_condition`:
 * one small record per policy, written out at scrape time a chunk of policies at a time.
 *
 * Why not prom-client gauges: at 10,000 policies these are some 70,000 series, each a hash string,
 * a labels object and an entry in the gauge, plus the labels kept to remove them; and prom-client
 * renders a family as one array of lines joined into one string. Under the Pod's 256Mi a scrape
 * at 10,000 policies ended the operator (bench/results.md, "Under the Pod's limits"). Here a
 * policy costs its record, and a scrape holds one chunk of text at a time.
 *
 * `show…` replaces a policy's whole set, so a previous status or reason disappears; `forget`
 * removes the policy when it is deleted, so policies come and gone leave no series behind.
 */

/** Setting name → value, as a PoolPolicy's status.current / status.recommended hold them. */
export type SettingValues = Readonly<Record<string, number>>;

export interface PolicySettingValues {
  readonly current?: SettingValues;
  readonly recommended?: SettingValues;
}

export interface PolicyConditionLabels {
  readonly type: string;
  readonly status: string;
  readonly reason: string;
}

interface PolicyRecord {
  readonly namespace: string;
  readonly policy: string;
  settings?: PolicySettingValues;
  conditions?: readonly PolicyConditionLabels[];
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly lines: (record: PolicyRecord) => string[];
}

/** Escaped as the text exposition format asks of a label value (as prom-client does). */
function labelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function sample(name: string, labels: ReadonlyArray<readonly [string, string]>, value: number): string {
  const rendered = labels.map(([label, v]) => `${label}="${labelValue(v)}"`).join(',');
  return `${name}{${rendered}} ${String(value)}`;
}

const SETTING_KINDS = ['current', 'recommended'] as const;

const FAMILIES: readonly Family[] = [
  {
    name: 'poolpilot_setting_value',
    help: 'Current and recommended value per policy and setting (kind=current|recommended).',
    lines: ({ namespace, policy, settings }) =>
      SETTING_KINDS.flatMap((kind) =>
        Object.entries(settings?.[kind] ?? {}).map(([setting, value]) =>
          sample(
            'poolpilot_setting_value',
            [
              ['namespace', namespace],
              ['policy', policy],
              ['setting', setting],
              ['kind', kind],
            ],
            value,
          ),
        ),
      ),
  },
  {
    name: 'poolpilot_policy_condition',
    help: 'PoolPolicy status conditions: 1 for the current status and reason of each condition type (Ready, MetricsAvailable, Limited).',
    lines: ({ namespace, policy, conditions }) =>
      (conditions ?? []).map(({ type, status, reason }) =>
        sample(
          'poolpilot_policy_condition',
          [
            ['namespace', namespace],
            ['policy', policy],
            ['type', type],
            ['status', status],
            ['reason', reason],
          ],
          1,
        ),
      ),
  },
];

export class PolicySeries {
  private readonly records = new Map<string, PolicyRecord>();

  showSettings(key: string, namespace: string, policy: string, settings: PolicySettingValues): void {
    this.record(key, namespace, policy).settings = settings;
  }

  showConditions(key: string, namespace: string, policy: string, conditions: readonly PolicyConditionLabels[]): void {
    // Only the labels: a status's conditions also carry messages, which no series shows.
    this.record(key, namespace, policy).conditions = conditions.map(({ type, status, reason }) => ({
      type,
      status,
      reason,
    }));
  }

  forget(key: string): void {
    this.records.delete(key);
  }

  /**
   * The families in the text exposition format, `policiesPerChunk` policies a chunk (each family
   * starts with its HELP and TYPE lines; a chunk ends with a newline).
   */
  *chunks(policiesPerChunk = 500): Generator<string> {
    for (const family of FAMILIES) {
      let lines = [`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} gauge`];
      let policies = 0;
      for (const record of this.records.values()) {
        lines.push(...family.lines(record));
        if (++policies % policiesPerChunk === 0) {
          yield `${lines.join('\n')}\n`;
          lines = [];
        }
      }
      if (lines.length > 0) yield `${lines.join('\n')}\n`;
    }
  }

  private record(key: string, namespace: string, policy: string): PolicyRecord {
    const existing = this.records.get(key);
    if (existing) return existing;
    const created: PolicyRecord = { namespace, policy };
    this.records.set(key, created);
    return created;
  }
}
