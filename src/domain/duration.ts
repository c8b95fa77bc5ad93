/**
 * Go-style duration strings (the format of Kubernetes/Prometheus durations),
 * restricted to the units poolpilot accepts: ms, s, m, h.
 *
 * Pure: no I/O, no clock.
 */

/** One or more `<decimal><unit>` groups, e.g. `30s`, `1h30m`, `1.5s`, `500ms`. No sign, no spaces. */
export const DURATION_PATTERN = /^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/;

/** Same rule as {@link DURATION_PATTERN}, as a string for CRD/JSON-schema `pattern`. */
export const DURATION_PATTERN_SOURCE = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

const GROUP = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;

/**
 * Parses a Go-style duration into whole milliseconds (rounded to the nearest ms).
 *
 * Returns `undefined` when `text` does not match {@link DURATION_PATTERN}
 * (e.g. `"5 minutes"`, `"-1s"`, `""`, `"10"`), or when the result is not a safe integer.
 * `"0s"` parses to 0; callers decide whether zero is allowed.
 */
export function parseDuration(text: string): number | undefined {
  if (!DURATION_PATTERN.test(text)) return undefined;
  let total = 0;
  for (const match of text.matchAll(GROUP)) {
    const amount = match[1];
    const unit = match[2];
    if (amount === undefined || unit === undefined) return undefined;
    const factor = UNIT_MS[unit];
    if (factor === undefined) return undefined;
    total += Number(amount) * factor;
  }
  const rounded = Math.round(total);
  return Number.isSafeInteger(rounded) ? rounded : undefined;
}

/**
 * Formats milliseconds like Go's `time.Duration.String()`:
 * 0 → `0s`, 500 → `500ms`, 30000 → `30s`, 300000 → `5m0s`, 3600000 → `1h0m0s`,
 * 1500 → `1.5s`, 90500 → `1m30.5s`. Negative values get a leading `-`.
 * Non-integer input is rounded to the nearest ms; non-finite input throws RangeError.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`formatDuration: not a finite number: ${ms}`);
  const rounded = Math.round(ms);
  if (rounded === 0) return '0s';
  const sign = rounded < 0 ? '-' : '';
  let rest = Math.abs(rounded);
  if (rest < 1000) return `${sign}${rest}ms`;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = formatSeconds(rest);
  if (hours > 0) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

/** Whole ms below one minute → seconds with trailing fractional zeros dropped (`1500` → `1.5`). */
function formatSeconds(ms: number): string {
  const whole = Math.floor(ms / 1000);
  const frac = ms % 1000;
  if (frac === 0) return String(whole);
  return `${whole}.${String(frac).padStart(3, '0').replace(/0+$/, '')}`;
}
