import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { ListenAddress } from '../config.js';

/** What /readyz asks: ready once the caches have synced (not when Prometheus is up). */
export type ReadinessProbe = () => boolean;

export interface RunningServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Writes `chunks` one at a time, each once the previous one has left (or the client has gone), so
 * that a large body is never held whole.
 */
async function writeChunks(res: ServerResponse, chunks: Iterable<string>): Promise<void> {
  for (const chunk of chunks) {
    if (res.destroyed) return;
    if (!res.write(chunk)) await drainedOrClosed(res);
  }
}

/** Resolves at 'drain' or 'close' (an error closes too), leaving no listener behind. */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Serves /healthz (process alive), /readyz (caches synced) and, given a registry, /metrics: the
 * registry's families, then `moreMetrics`' chunks of text (families kept outside prom-client).
 */
export async function startHttpServer(
  address: ListenAddress,
  options: { registry?: Registry; moreMetrics?: () => Iterable<string>; ready?: ReadinessProbe },
): Promise<RunningServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
    } else if (path === '/readyz' && options.ready) {
      const ready = options.ready();
      res.writeHead(ready ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ready ? 'ok' : 'caches not synced');
    } else if (path === '/metrics' && options.registry) {
      const registry = options.registry;
      registry.metrics().then(
        async (body) => {
          res.writeHead(200, { 'Content-Type': registry.contentType });
          res.write(body);
          try {
            await writeChunks(res, options.moreMetrics?.() ?? []);
            res.end();
          } catch {
            // The status line has gone out: a body cut short is all that can say it failed.
            res.destroy();
          }
        },
        (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(err)),
      );
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
