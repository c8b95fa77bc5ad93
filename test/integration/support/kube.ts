import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { readLocalEnv } from './local-env.js';

/** A KubeConfig for the local control plane's admin. */
export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(readLocalEnv().KUBECONFIG);
  return kc;
}

/** Creates a namespace of its own for one test file; names are unique per call. */
export async function createTestNamespace(kc: KubeConfig, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

/**
 * Deletes the namespace. No controller-manager runs, so it stays Terminating with its objects;
 * names are unique, so that does not disturb later tests.
 */
export async function deleteTestNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(CoreV1Api).deleteNamespace({ name });
}

/** A minimal Deployment whose containers carry the given env. */
export function deploymentManifest(
  name: string,
  containers: ReadonlyArray<{ name: string; env?: Array<{ name: string; value: string }> }>,
): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: containers.map((c) => ({ name: c.name, image: 'example.invalid/app:1', env: c.env ?? [] })),
        },
      },
    },
  };
}

export async function createDeployment(kc: KubeConfig, namespace: string, body: V1Deployment): Promise<V1Deployment> {
  return kc.makeApiClient(AppsV1Api).createNamespacedDeployment({ namespace, body });
}

/** A kubeconfig file in `dir` for the ServiceAccount, with a token (1 h) from the TokenRequest API. */
export async function serviceAccountKubeconfig(
  admin: KubeConfig,
  namespace: string,
  serviceAccount: string,
  dir: string,
): Promise<string> {
  const request = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = request.status?.token;
  if (token === undefined || token === '') throw new Error('TokenRequest returned no token');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'local', server: readLocalEnv().KUBE_APISERVER_URL, skipTLSVerify: true }],
    users: [{ name: serviceAccount, token }],
    contexts: [{ name: serviceAccount, cluster: 'local', user: serviceAccount }],
    currentContext: serviceAccount,
  });
  const path = join(dir, `${namespace}-${serviceAccount}.kubeconfig`);
  writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
  return path;
}
