import { describe, expect, it } from '@jest/globals';
import { RequestContext } from '@kubernetes/client-node';
import { PooledKubeConfig } from '../../../src/adapters/kube-connection.js';
import { TokenBucket } from '../../../src/runtime/token-bucket.js';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.js';

function kubeConfig(limiter?: TokenBucket): PooledKubeConfig {
  const kc = new PooledKubeConfig(limiter);
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:6443', caData: Buffer.from('a CA').toString('base64') }],
    users: [{ name: 'u', token: 'secret-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

const request = (): RequestContext => new RequestContext('https://127.0.0.1:6443/api/v1/namespaces', 'GET');

describe('PooledKubeConfig', () => {
  it('sends every request through one connection pool, with the credentials on each', async () => {
    const kc = kubeConfig();
    const first = request();
    const second = request();
    await kc.applySecurityAuthentication(first);
    await kc.applySecurityAuthentication(second);
    expect(first.getDispatcher()).toBeDefined();
    expect(second.getDispatcher()).toBe(first.getDispatcher());
    expect(second.getHeaders().Authorization).toBe('Bearer secret-token');
  });

  it('holds each request until the rate limit lets it go', async () => {
    const clock = new FakeClock();
    const kc = kubeConfig(new TokenBucket({ qps: 1, burst: 1, clock }));
    const sent: number[] = [];
    for (const i of [0, 1])
      void kc.applySecurityAuthentication(request()).then(() => {
        sent.push(i);
      });
    await flushMicrotasks();
    expect(sent).toEqual([0]);
    clock.advance(1000);
    await flushMicrotasks();
    expect(sent).toEqual([0, 1]);
  });
});
