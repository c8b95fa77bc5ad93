import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import axios from 'axios';
import { Registry } from 'prom-client';
import { readLocalEnv } from './local-env.js';

/** A prom-client exporter on loopback, registered with the local Prometheus through file_sd. */
export interface ScrapeTarget {
  readonly registry: Registry;
  readonly address: string;
  stop(): Promise<void>;
}

export async function startScrapeTarget(
  name: string,
  labels: Readonly<Record<string, string>>,
  targetsDir?: string,
): Promise<ScrapeTarget> {
  const registry = new Registry();
  const server: Server = createServer((_req, res) => {
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': registry.contentType });
        res.end(body);
      },
      (err: unknown) => {
        res.writeHead(500);
        res.end(String(err));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const unregister = registerScrapeTarget(name, address, labels, targetsDir);
  return {
    registry,
    address,
    stop: async () => {
      unregister();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}

/**
 * Makes the local Prometheus scrape `address` (host:port, path /metrics) with `labels`, through a
 * file_sd file named after `name`; returns the function that removes it again. `targetsDir` is
 * the shared plane's unless a test's own plane is meant.
 */
export function registerScrapeTarget(
  name: string,
  address: string,
  labels: Readonly<Record<string, string>>,
  targetsDir = readLocalEnv().PROMETHEUS_TARGETS_DIR,
): () => void {
  const targetFile = join(targetsDir, `${name}.json`);
  // Write then rename would be atomic; Prometheus re-reads on change and tolerates a partial
  // file by keeping the previous target list, so a direct write is enough here.
  writeFileSync(targetFile, JSON.stringify([{ targets: [address], labels }]));
  return () => {
    rmSync(targetFile, { force: true });
  };
}

interface VectorResult {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** Instant query against the local Prometheus; returns the vector's samples. */
export async function queryVector(promql: string): Promise<VectorResult[]> {
  const response = await axios.get<{ status: string; data: { resultType: string; result: VectorResult[] } }>(
    `${readLocalEnv().PROMETHEUS_URL}/api/v1/query`,
    { params: { query: promql }, timeout: 5000 },
  );
  return response.data.data.result;
}

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 30000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${lastError === undefined ? '' : `: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}`}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
