/**
 * A fault-injecting HTTP proxy in front of the real Prometheus, for fault tests: it forwards
 * each request to the upstream unchanged, or answers it with the fault that is set (an HTTP
 * error, a body that is not a Prometheus reply, a reply slower than the client's timeout). It
 * counts every request, so a test can tell how often the operator asked.
 *
 * Not a fake Prometheus: with no fault set (or `{ kind: 'pass' }`) every answer comes from the
 * real one.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  /** Forward to the real Prometheus. */
  | { readonly kind: 'pass' }
  /** Answer with this HTTP status and body (text/plain unless `contentType`). */
  | { readonly kind: 'status'; readonly status: number; readonly body: string; readonly contentType?: string }
  /** Forward, but only after `ms` (hold the request open meanwhile). */
  | { readonly kind: 'delay'; readonly ms: number };

export interface ProxiedRequest {
  readonly path: string;
  /** The `query` parameter of /api/v1/query, if any. */
  readonly query: string | undefined;
}

export interface FaultProxy {
  /** Base URL to give the operator (spec.prometheus.address). */
  readonly url: string;
  setFault(fault: Fault): void;
  /** Every request received so far, in order. */
  readonly requests: readonly ProxiedRequest[];
  stop(): Promise<void>;
}

export async function startFaultProxy(upstream: string, initial: Fault = { kind: 'pass' }): Promise<FaultProxy> {
  const target = new URL(upstream);
  let fault = initial;
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const upstreamReq = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(`fault-proxy: upstream failed: ${err.message}`);
    });
    req.pipe(upstreamReq);
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    requests.push({ path: url.pathname, query: url.searchParams.get('query') ?? undefined });
    const now = fault;
    switch (now.kind) {
      case 'pass':
        forward(req, res);
        return;
      case 'status':
        res.writeHead(now.status, { 'Content-Type': now.contentType ?? 'text/plain' });
        res.end(now.body);
        return;
      case 'delay': {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!res.destroyed) forward(req, res);
        }, now.ms);
        timers.add(timer);
        return;
      }
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setFault: (next) => {
      fault = next;
    },
    requests,
    stop: async () => {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}
