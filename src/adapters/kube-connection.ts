/**
 * The KubeConfig every API request of the operator goes through, fixing two costs of
 * client-node 2.0's defaults that grow with the number of requests:
 *
 * - **One connection pool.** For a cluster with a CA (every kubeconfig and the in-cluster
 *   config), client-node builds a new undici Agent for each request
 *   (KubeConfig.applySecurityAuthentication → createDispatcher), so each request opens a new TLS
 *   connection and does a handshake: a CPU profile of the operator at 1,000 policies showed
 *   `createSecureContext` and `TLSSocket._start` per status write, and the API server paid for
 *   each handshake too. Here the first dispatcher is kept and every later request reuses it
 *   (keep-alive connections). Credentials sent as headers (tokens, exec plugins) are still
 *   applied per request; TLS client certificates are read once, at the first request.
 * - **A client-side rate limit** (--kube-api-qps, --kube-api-burst), as client-go's rest.Config
 *   QPS/Burst: every request, a watch's start included, first takes a token from a
 *   {@link TokenBucket}, so a start-up with thousands of policies queues its writes in the
 *   operator instead of flooding the API server.
 */
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';
import type { TokenBucket } from '../runtime/token-bucket.js';

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

export class PooledKubeConfig extends KubeConfig {
  private dispatcher: Dispatcher | undefined;

  /**
   * `limiter`: the rate limit every request waits for (none when undefined); `onRequest` is told
   * the HTTP method of each request as it leaves.
   */
  constructor(
    private readonly limiter: TokenBucket | undefined,
    private readonly onRequest?: (method: string) => void,
  ) {
    super();
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.limiter?.take();
    this.onRequest?.(context.getHttpMethod());
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (fresh === undefined) return;
    this.dispatcher ??= fresh;
    context.setDispatcher(this.dispatcher);
  }
}
