/**
 * Two small rules about errors that several modules follow: how the HTTP status of a failed API
 * call is read, and that a caller-supplied hook never breaks the loop that calls it.
 */

/**
 * The HTTP status of a failed API call, if it has one: client-node's ApiException and KubeError
 * both carry it as a numeric `code`.
 */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number') return err.code;
  return undefined;
}

/**
 * Runs a caller-supplied hook (logging, metrics, leadership callbacks) and drops its exceptions:
 * a faulty hook must not stop a worker or the leader elector.
 */
export function callHook(hook: () => void): void {
  try {
    hook();
  } catch {
    // Deliberately ignored: see above.
  }
}
