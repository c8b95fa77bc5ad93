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

/**
 * The error's message followed by those of its causes, on one line: `what failed ← why`. An API
 * error (client-node's ApiException: a numeric `code` and the API server's Status as `body`) is
 * told by its status and the Status message, not by the headers and body its message carries.
 */
export function causeOf(err: unknown): string {
  const messages: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    messages.push(
      current instanceof Error ? messageOf(current) : typeof current === 'string' ? current : JSON.stringify(current),
    );
    current = current instanceof Error ? current.cause : undefined;
  }
  // A wrapper usually repeats its cause's text; say each part once.
  const parts = messages.filter((m, i) => i === 0 || !messages.slice(0, i).some((before) => before.includes(m)));
  return parts.join(' ← ').replace(/\s*\n\s*/g, ' ');
}

function messageOf(err: Error): string {
  const status = httpStatusOf(err);
  const statusMessage = statusMessageOf('body' in err ? err.body : undefined);
  return status !== undefined && statusMessage !== undefined ? `HTTP ${status}: ${statusMessage}` : err.message;
}

/** The `message` of a Kubernetes Status an API error carries as its body (JSON text or parsed), if any. */
export function statusMessageOf(body: unknown): string | undefined {
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined; // not JSON: no Status
    }
  }
  return typeof parsed === 'object' && parsed !== null && 'message' in parsed && typeof parsed.message === 'string'
    ? parsed.message
    : undefined;
}

type LogFn = (fields: object, message: string) => void;

/**
 * Logs a failure that will be retried: one line at `level` naming its cause (`error`), and the
 * error itself, stack included, as a second record at debug level.
 */
export function logRetry<L extends 'warn' | 'error'>(
  log: { readonly debug: LogFn } & { readonly [K in L]: LogFn },
  level: L,
  fields: object,
  message: string,
  err: unknown,
): void {
  log[level]({ ...fields, error: causeOf(err) }, message);
  log.debug({ ...fields, err }, `${message}: stack`);
}
