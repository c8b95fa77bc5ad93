/**
 * Ordering of resourceVersions of one resource, as Kubernetes 1.35 defines it (KEP-5504,
 * client-go's CompareResourceVersion): a resourceVersion is a positive decimal integer without
 * leading zeros, and a larger one is newer. Anything else (an aggregated API server's own
 * scheme, an empty string, "0") is not comparable.
 */
const COMPARABLE = /^[1-9][0-9]*$/;

/** -1, 0 or 1 as `a` is older than, the same as or newer than `b`; undefined when either is not comparable. */
export function compareResourceVersions(a: string, b: string): -1 | 0 | 1 | undefined {
  if (!COMPARABLE.test(a) || !COMPARABLE.test(b)) return undefined;
  // Without leading zeros, a longer number is larger; equal lengths compare as strings.
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}
