/**
 * On-demand Secret reads (no informer, no cache of all Secrets): only the Secret a policy or budget
 * names in spec.prometheus.authSecretRef, in its own namespace. Needs `get` on secrets, which the
 * default RBAC does not grant (deploy/optional/secrets-reader/ does).
 */
import { ApiException, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

/** Reads a Secret's `data` (base64 values); undefined when it does not exist. Other errors reject. */
export function secretReader(
  kc: KubeConfig,
): (namespace: string, name: string) => Promise<Readonly<Record<string, string>> | undefined> {
  const core = kc.makeApiClient(CoreV1Api);
  return async (namespace, name) => {
    try {
      const secret = await core.readNamespacedSecret({ name, namespace });
      return secret.data ?? {};
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  };
}
