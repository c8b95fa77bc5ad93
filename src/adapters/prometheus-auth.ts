/**
 * Prometheus credentials from a Secret (`spec.prometheus.authSecretRef`), as KEDA's authModes:
 * bearer (`bearerToken`), basic (`username` + `password`) and TLS client certificates
 * (`tls.crt` + `tls.key`, optional `ca.crt`, which alone only pins the server's CA).
 *
 * {@link authFromSecretData} is pure: Secret `data` (base64) in, the credentials or a refusal
 * naming the key to fix out. Messages never contain a secret value. {@link requestOptions} turns
 * credentials into axios request options (headers, httpsAgent).
 */
import { Agent } from 'node:https';

export interface PrometheusAuth {
  readonly bearerToken?: string;
  readonly basic?: { readonly username: string; readonly password: string };
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
}

export type AuthResult =
  { readonly ok: true; readonly auth: PrometheusAuth } | { readonly ok: false; readonly message: string };

const KEYS = ['bearerToken', 'username', 'password', 'ca.crt', 'tls.crt', 'tls.key'] as const;

/** Decodes one base64 value as strict UTF-8; undefined when absent, an Error message when not text. */
function decode(data: Readonly<Record<string, string>>, key: string): string | undefined | { readonly error: string } {
  const b64 = data[key];
  if (b64 === undefined) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(b64, 'base64'));
  } catch {
    return { error: `key ${key} is not UTF-8 text` };
  }
}

/**
 * The credentials a Secret's `data` holds; `where` names the Secret in messages
 * (`secret prom-auth (spec.prometheus.authSecretRef)`).
 */
export function authFromSecretData(data: Readonly<Record<string, string>> | undefined, where: string): AuthResult {
  const values: Partial<Record<(typeof KEYS)[number], string>> = {};
  for (const key of KEYS) {
    const value = decode(data ?? {}, key);
    if (typeof value === 'object') return { ok: false, message: `${where}: ${value.error}` };
    if (value !== undefined) values[key] = value;
  }
  const { bearerToken, username, password } = values;
  const refuse = (message: string): AuthResult => ({ ok: false, message: `${where}: ${message}` });
  if (bearerToken !== undefined && (username !== undefined || password !== undefined))
    return refuse('set bearerToken or username + password, not both');
  if ((username === undefined) !== (password === undefined))
    return refuse('basic auth needs both username and password');
  // A header value must not carry a line break (header injection) nor control characters.
  const headerSafe = (text: string): boolean => {
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      if (unit < 0x20 || unit === 0x7f) return false;
    }
    return true;
  };
  if (bearerToken !== undefined && (bearerToken.trim() === '' || !headerSafe(bearerToken.trim())))
    return refuse('bearerToken must be non-empty text without control characters or line breaks');
  if (username !== undefined && (username.includes(':') || !headerSafe(username)))
    return refuse('username must not contain ":" or control characters');
  if (password !== undefined && !headerSafe(password))
    return refuse('password must not contain control characters or line breaks');
  if ((values['tls.crt'] === undefined) !== (values['tls.key'] === undefined))
    return refuse('a TLS client certificate needs both tls.crt and tls.key');
  const auth: { bearerToken?: string; basic?: PrometheusAuth['basic']; tls?: PrometheusAuth['tls'] } = {};
  if (bearerToken !== undefined) auth.bearerToken = bearerToken.trim();
  if (username !== undefined && password !== undefined) auth.basic = { username, password };
  if (values['ca.crt'] !== undefined || values['tls.crt'] !== undefined) {
    auth.tls = {
      ...(values['ca.crt'] === undefined ? {} : { ca: values['ca.crt'] }),
      ...(values['tls.crt'] === undefined ? {} : { cert: values['tls.crt'] }),
      ...(values['tls.key'] === undefined ? {} : { key: values['tls.key'] }),
    };
  }
  if (auth.bearerToken === undefined && auth.basic === undefined && auth.tls === undefined) {
    return refuse(`holds none of the keys ${KEYS.join(', ')}`);
  }
  return { ok: true, auth };
}

export interface AuthRequestOptions {
  readonly headers: Readonly<Record<string, string>>;
  readonly httpsAgent?: Agent;
}

/** axios request options for `auth` (an agent of its own when TLS material is given). */
export function requestOptions(auth: PrometheusAuth | undefined): AuthRequestOptions {
  if (auth === undefined) return { headers: {} };
  const headers: Record<string, string> = {};
  if (auth.bearerToken !== undefined) headers.Authorization = `Bearer ${auth.bearerToken}`;
  if (auth.basic !== undefined)
    headers.Authorization = `Basic ${Buffer.from(`${auth.basic.username}:${auth.basic.password}`, 'utf8').toString('base64')}`;
  const tls = auth.tls;
  return tls === undefined
    ? { headers }
    : {
        headers,
        httpsAgent: new Agent({
          ...(tls.ca === undefined ? {} : { ca: tls.ca }),
          ...(tls.cert === undefined ? {} : { cert: tls.cert }),
          ...(tls.key === undefined ? {} : { key: tls.key }),
          keepAlive: true,
        }),
      };
}
