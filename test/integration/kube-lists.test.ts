import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { KubeClient, loadKubeConfig, type ListMeta, type ListPage } from '../../src/adapters/kube.js';
import { POOLPOLICY_RESOURCE } from '../../src/controllers/poolpolicy/reconciler.js';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
} from './support/kube.js';
import { createPolicy, installCrds } from './support/operator.js';
import { readLocalEnv } from './support/local-env.js';

// The caches list page by page (500 objects a page); these pages come from the real API server.

/** Every name, following the continue tokens of pages of two. */
async function allPages(
  list: (page: ListPage) => Promise<{ metadata?: ListMeta; items: KubernetesObject[] }>,
): Promise<{ names: string[]; pages: number }> {
  const names: string[] = [];
  let pages = 0;
  let continueToken: string | undefined;
  do {
    const page = await list({ limit: 2, continueToken });
    pages++;
    names.push(...page.items.map((i) => i.metadata?.name ?? ''));
    continueToken = page.metadata?._continue;
  } while (continueToken !== undefined);
  return { names: names.sort(), pages };
}

describe('KubeClient lists and reads', () => {
  let kc: KubeConfig;
  let namespace: string;
  let kube: KubeClient;

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'lists');
    kube = new KubeClient(loadKubeConfig(readLocalEnv().KUBECONFIG));
    for (const name of ['a', 'b', 'c']) {
      await createDeployment(kc, namespace, deploymentManifest(name, [{ name: 'app' }]));
      await createPolicy(kc, namespace, name, { targetRef: { name }, database: { poolSize: { min: 1, max: 2 } } });
    }
  });

  afterAll(async () => {
    await deleteTestNamespace(kc, namespace);
  });

  it('hands out every PoolPolicy and Deployment across pages', async () => {
    expect(await allPages((page) => kube.listCustom(POOLPOLICY_RESOURCE, namespace, page))).toEqual({
      names: ['a', 'b', 'c'],
      pages: 2,
    });
    expect(await allPages((page) => kube.listDeployments(namespace, page))).toEqual({
      names: ['a', 'b', 'c'],
      pages: 2,
    });
  });

  it('reads one object, and a missing one as undefined', async () => {
    expect((await kube.readDeployment(namespace, 'a'))?.metadata?.name).toBe('a');
    expect(await kube.readDeployment(namespace, 'missing')).toBeUndefined();
    expect(await kube.readConfigMap(namespace, 'missing')).toBeUndefined();
  });
});
