/**
 * The demo workload (demo/workload/app.py, Debian's /usr/bin/python3) against a real PostgreSQL
 * and Redis started by demo/up.sh in a temporary state directory (about 2 s): its /metrics shows
 * the runbook's pool metrics with the values a saturated QueuePool has, and a checkout that waits
 * longer than DB_POOL_TIMEOUT is answered 503 and counted in voiceassist_db_pool_timeouts_total;
 * the signals a full pool hides (waiters, checkouts, checkout wait and hold histograms, connections
 * opened, PostgreSQL refusals) count what happened. Its pools reload live from POOL_CONFIG_FILE
 * (a ConfigMap-style volume updated the kubelet's way, by swapping a symlink, or a plain file
 * rewritten) and on SIGHUP: the
 * gauges move; resized in place (the default) the warm connections stay open, the busy ones too
 * and the idle ones above a smaller size close; swapped (POOL_RELOAD=swap) no request fails during
 * the swap and the old engine's PostgreSQL connections close once its last request is done; a
 * malformed file changes nothing.
 * Needs the Debian packages postgresql, postgresql-client, redis-server, python3-sqlalchemy,
 * python3-psycopg2, python3-redis and python3-prometheus-client.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoBackends, type DemoBackends } from './support/demo-backends.js';
import { repoRoot } from './support/local-env.js';
import { freePort } from './support/ports.js';
import { eventually } from './support/prometheus.js';

/** The value of one sample line of the Prometheus text format (labels exactly as printed). */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** The sample's value, or undefined when the sample is missing. */
function samples(text: string, names: Record<string, string>): Record<string, number | undefined> {
  return Object.fromEntries(Object.entries(names).map(([key, name]) => [key, sample(text, name)]));
}

/**
 * Writes `text` as key `pool.conf` of a ConfigMap volume in `dir` the way the kubelet does: the
 * content goes to a fresh timestamped directory, `..data` is switched to it by renaming a new
 * symlink over it, and `pool.conf` is a symlink through `..data`. Returns the path apps read.
 */
let volumeVersion = 0;
function writeConfigMapVolume(dir: string, text: string): string {
  volumeVersion += 1;
  const version = `..version_${volumeVersion}`;
  mkdirSync(join(dir, version), { recursive: true });
  writeFileSync(join(dir, version, 'pool.conf'), text);
  symlinkSync(version, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  if (volumeVersion === 1) symlinkSync('..data/pool.conf', join(dir, 'pool.conf'));
  return join(dir, 'pool.conf');
}

async function stopApp(app: ChildProcess | undefined): Promise<void> {
  if (app?.exitCode === null) {
    const exited = new Promise((r) => app.once('exit', r));
    app.kill('SIGTERM');
    await exited;
  }
}

describe('demo workload against real PostgreSQL and Redis', () => {
  let backends: DemoBackends;
  let state: string;
  let env: Readonly<Record<string, string>>;
  let app: ChildProcess | undefined;
  let base: string;

  /** Starts app.py on a free port with these pool settings; resolves once /healthz answers. */
  async function startApp(pool: Record<string, string>): Promise<{ process: ChildProcess; base: string }> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn('/usr/bin/python3', [join(repoRoot, 'demo/workload/app.py')], {
      env: {
        PATH: '/usr/bin:/bin',
        PYTHONDONTWRITEBYTECODE: '1',
        DATABASE_URL: env.DATABASE_URL ?? '',
        REDIS_URL: env.REDIS_URL ?? '',
        PORT: String(port),
        ...pool,
      },
      stdio: 'ignore',
    });
    await eventually(async () => ((await fetch(`${url}/healthz`)).ok ? true : undefined), 20_000, 'app.py /healthz');
    return { process: child, base: url };
  }

  const psql = (sql: string): string => backends.psql(sql);

  beforeAll(async () => {
    backends = startDemoBackends();
    ({ state, env } = backends);
    // Redis allows 8 connections: six concurrent requests must meet the database pool's limit, not Redis's.
    ({ process: app, base } = await startApp({
      DB_POOL_SIZE: '2',
      DB_MAX_OVERFLOW: '1',
      DB_POOL_TIMEOUT: '0.5',
      REDIS_MAX_CONNECTIONS: '8',
    }));
  });

  afterAll(async () => {
    await stopApp(app);
    backends.stop();
  });

  const metrics = async (): Promise<string> => (await fetch(`${base}/metrics`)).text();

  it('exports the configured pool sizes while idle', async () => {
    const text = await metrics();
    expect({
      size: sample(text, 'voiceassist_db_pool_size'),
      checkedOut: sample(text, 'voiceassist_db_pool_checked_out'),
      overflow: sample(text, 'voiceassist_db_pool_overflow'),
      utilization: sample(text, 'voiceassist_db_pool_utilization_percent'),
      redisMax: sample(text, 'voiceassist_redis_pool_max_connections'),
      redisInUse: sample(text, 'voiceassist_redis_pool_in_use'),
      timeouts: sample(text, 'voiceassist_db_pool_timeouts_total'),
      redisErrors: sample(text, 'voiceassist_redis_connection_errors_total'),
    }).toEqual({
      size: 2,
      checkedOut: 0,
      overflow: 0,
      utilization: 0,
      redisMax: 8,
      redisInUse: 0,
      timeouts: 0,
      redisErrors: 0,
    });
    expect(
      samples(text, {
        maxOverflow: 'voiceassist_db_pool_max_overflow',
        waiters: 'voiceassist_db_pool_waiters',
        checkouts: 'voiceassist_db_pool_checkouts_total',
        waits: 'voiceassist_db_pool_checkout_wait_seconds_count',
        holds: 'voiceassist_db_connection_hold_seconds_count',
        opened: 'voiceassist_db_connections_opened_total',
        refused: 'voiceassist_db_connection_refused_total',
      }),
    ).toEqual({ maxOverflow: 1, waiters: 0, checkouts: 0, waits: 0, holds: 0, opened: 0, refused: 0 });
  });

  it('a saturated pool: 3 of 6 requests hold the 2 + 1 connections, 3 time out after DB_POOL_TIMEOUT', async () => {
    const requests = Array.from({ length: 6 }, async () => {
      const res = await fetch(`${base}/?hold=4`);
      await res.text();
      return { status: res.status, error: res.headers.get('x-error') };
    });
    // The three that found no connection time out after 0.5 s while the other three still hold
    // theirs (4 s): wait for that fact, not for a fixed time (a busy machine starts them late).
    const during = await eventually(
      async () => {
        const m = await metrics();
        return sample(m, 'voiceassist_db_pool_timeouts_total') === 3 ? m : undefined;
      },
      3000,
      'three timeouts while three connections are held',
    );
    const appConnections = psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'");
    const results = await Promise.all(requests);
    const after = await metrics();

    expect({
      checkedOut: sample(during, 'voiceassist_db_pool_checked_out'),
      checkedIn: sample(during, 'voiceassist_db_pool_checked_in'),
      overflow: sample(during, 'voiceassist_db_pool_overflow'),
      utilization: sample(during, 'voiceassist_db_pool_utilization_percent'),
      timeouts: sample(during, 'voiceassist_db_pool_timeouts_total'),
      postgres: Number(appConnections),
    }).toEqual({ checkedOut: 3, checkedIn: 0, overflow: 1, utilization: 100, timeouts: 3, postgres: 3 });
    expect(results.filter((r) => r.status === 200)).toHaveLength(3);
    expect(results.filter((r) => r.status === 503 && r.error === 'db-pool-timeout')).toHaveLength(3);
    // Afterwards the pool keeps pool_size idle connections; the overflow one is closed.
    expect({
      checkedOut: sample(after, 'voiceassist_db_pool_checked_out'),
      checkedIn: sample(after, 'voiceassist_db_pool_checked_in'),
      overflow: sample(after, 'voiceassist_db_pool_overflow'),
      timeouts: sample(after, 'voiceassist_db_pool_timeouts_total'),
      ok: sample(after, 'voiceassist_http_request_duration_seconds_count{status="200"}'),
      timedOut: sample(after, 'voiceassist_http_request_duration_seconds_count{status="503"}'),
    }).toEqual({ checkedOut: 0, checkedIn: 2, overflow: 0, timeouts: 3, ok: 3, timedOut: 3 });
    // Every checkout is timed, the 3 timeouts included; 3 connections were opened (2 + 1 overflow).
    expect(
      samples(after, {
        waiters: 'voiceassist_db_pool_waiters',
        checkouts: 'voiceassist_db_pool_checkouts_total',
        waits: 'voiceassist_db_pool_checkout_wait_seconds_count',
        waitsUnderTimeout: 'voiceassist_db_pool_checkout_wait_seconds_bucket{le="0.25"}',
        holds: 'voiceassist_db_connection_hold_seconds_count',
        opened: 'voiceassist_db_connections_opened_total',
        refused: 'voiceassist_db_connection_refused_total',
      }),
    ).toEqual({ waiters: 0, checkouts: 3, waits: 6, waitsUnderTimeout: 3, holds: 3, opened: 3, refused: 0 });
  });

  it('requests queued behind a busy pool show as waiters until they get the connection', async () => {
    const patient = await startApp({
      DB_POOL_SIZE: '1',
      DB_MAX_OVERFLOW: '0',
      DB_POOL_TIMEOUT: '30',
      REDIS_MAX_CONNECTIONS: '5',
    });
    try {
      const read = async (): Promise<string> => (await fetch(`${patient.base}/metrics`)).text();
      const call = async (hold: number): Promise<number> => {
        const res = await fetch(`${patient.base}/?hold=${hold}`);
        await res.text();
        return res.status;
      };
      const holder = call(3);
      await eventually(
        async () => (sample(await read(), 'voiceassist_db_pool_checked_out') === 1 ? true : undefined),
        10_000,
        'one connection checked out',
      );
      const queued = [call(0.1), call(0.1)];
      await eventually(
        async () => (sample(await read(), 'voiceassist_db_pool_waiters') === 2 ? true : undefined),
        10_000,
        'two waiters',
      );
      const statuses = await Promise.all([holder, ...queued]);
      expect(statuses).toEqual([200, 200, 200]);
      expect(
        samples(await read(), {
          waiters: 'voiceassist_db_pool_waiters',
          checkouts: 'voiceassist_db_pool_checkouts_total',
          timeouts: 'voiceassist_db_pool_timeouts_total',
          opened: 'voiceassist_db_connections_opened_total',
        }),
      ).toEqual({ waiters: 0, checkouts: 3, timeouts: 0, opened: 1 });
    } finally {
      await stopApp(patient.process);
    }
  });

  it('a connection PostgreSQL refuses is answered 503 db-connection-refused and counted', async () => {
    // The first app keeps its 2 pooled connections open; role app may open no more than those 2.
    await eventually(
      () =>
        Promise.resolve(psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'") === '2' ? true : undefined),
      10_000,
      'only the first app connected',
    );
    const counters = {
      refused: 'voiceassist_db_connection_refused_total',
      timeouts: 'voiceassist_db_pool_timeouts_total',
    };
    const before = samples(await metrics(), counters);
    psql('ALTER ROLE app CONNECTION LIMIT 2');
    try {
      const results = await Promise.all(
        Array.from({ length: 3 }, async () => {
          const res = await fetch(`${base}/?hold=1`);
          await res.text();
          return { status: res.status, error: res.headers.get('x-error') };
        }),
      );
      expect(results.filter((r) => r.status === 200)).toHaveLength(2);
      expect(results.filter((r) => r.status === 503 && r.error === 'db-connection-refused')).toHaveLength(1);
      const after = samples(await metrics(), counters);
      expect({
        refused: (after.refused ?? NaN) - (before.refused ?? NaN),
        timeouts: (after.timeouts ?? NaN) - (before.timeouts ?? NaN),
      }).toEqual({ refused: 1, timeouts: 0 });
    } finally {
      psql('ALTER ROLE app CONNECTION LIMIT -1');
    }
  });

  describe('live reload from POOL_CONFIG_FILE', () => {
    const gauges = {
      size: 'voiceassist_db_pool_size',
      maxOverflow: 'voiceassist_db_pool_max_overflow',
      redisMax: 'voiceassist_redis_pool_max_connections',
      generation: 'voiceassist_pool_config_generation',
      reloadErrors: 'voiceassist_pool_config_reload_errors_total',
    };
    /** PostgreSQL connections of one app process's engine of one config generation. */
    const connectionsOf = (app: ChildProcess, generation: number): number =>
      Number(
        psql(
          `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'voiceassist pid ${String(app.pid)} pool gen ${generation}'`,
        ),
      );

    /** The app's metrics text once it reports config generation `generation`. */
    const atGeneration = (read: () => Promise<string>, generation: number): Promise<string> =>
      eventually(
        async () => {
          const text = await read();
          return sample(text, gauges.generation) === generation ? text : undefined;
        },
        10_000,
        `generation ${generation} after the file changed`,
      );

    it('POOL_RELOAD=swap: a ConfigMap update swaps in new pools under load: gauges move, no request fails, the old engine drains to 0 connections', async () => {
      const volume = join(state, 'pool-config-volume');
      const file = writeConfigMapVolume(
        volume,
        'DB_POOL_SIZE=2\nDB_MAX_OVERFLOW=1\nDB_POOL_TIMEOUT=10\nREDIS_MAX_CONNECTIONS=5\n',
      );
      // The file wins over env.
      const reloading = await startApp({
        POOL_RELOAD: 'swap',
        POOL_CONFIG_FILE: file,
        DB_POOL_SIZE: '9',
        DB_MAX_OVERFLOW: '9',
        REDIS_MAX_CONNECTIONS: '9',
      });
      const read = async (): Promise<string> => (await fetch(`${reloading.base}/metrics`)).text();
      const call = async (hold: number): Promise<number> => {
        const res = await fetch(`${reloading.base}/?hold=${hold}`);
        await res.text();
        return res.status;
      };
      let loading = true;
      const statuses: number[] = [];
      const worker = async (): Promise<void> => {
        while (loading) statuses.push(await call(0.05));
      };
      try {
        expect(samples(await read(), gauges)).toEqual({
          size: 2,
          maxOverflow: 1,
          redisMax: 5,
          generation: 0,
          reloadErrors: 0,
        });
        // A long request keeps the first engine busy across the swap; three workers keep requests flowing.
        const longRequest = call(5);
        const workers = [worker(), worker(), worker()];
        await eventually(
          () => Promise.resolve(connectionsOf(reloading.process, 0) >= 1 && statuses.length >= 3 ? true : undefined),
          10_000,
          'load on generation 0',
        );

        writeConfigMapVolume(
          volume,
          'DB_POOL_SIZE=4\nDB_MAX_OVERFLOW=2\nDB_POOL_TIMEOUT=10\nREDIS_MAX_CONNECTIONS=8\n',
        );
        const swapped = await atGeneration(read, 1);
        expect(samples(swapped, gauges)).toEqual({
          size: 4,
          maxOverflow: 2,
          redisMax: 8,
          generation: 1,
          reloadErrors: 0,
        });
        // The long request still holds its connection on the old engine, which is counted until it drains.
        expect(sample(swapped, 'voiceassist_db_pool_draining_connections')).toBeGreaterThanOrEqual(1);
        expect(connectionsOf(reloading.process, 0)).toBeGreaterThanOrEqual(1);
        const requestsAtSwap = statuses.length;
        await eventually(
          () =>
            Promise.resolve(
              connectionsOf(reloading.process, 1) >= 1 && statuses.length >= requestsAtSwap + 3 ? true : undefined,
            ),
          10_000,
          'load on generation 1',
        );

        expect(await longRequest).toBe(200);
        await eventually(
          () => Promise.resolve(connectionsOf(reloading.process, 0) === 0 ? true : undefined),
          10_000,
          'the old engine closed its connections',
        );
        expect(sample(await read(), 'voiceassist_db_pool_draining_connections')).toBe(0);
        loading = false;
        await Promise.all(workers);
        expect({ failed: statuses.filter((s) => s !== 200).length, total: statuses.length > requestsAtSwap }).toEqual({
          failed: 0,
          total: true,
        });
      } finally {
        loading = false;
        await stopApp(reloading.process);
      }
    });

    it('POOL_RELOAD=resize (the default): the live pools take the new sizes under load, their warm connections stay open', async () => {
      const file = join(state, 'pool-resize.conf');
      // Redis allows 8: six requests at once meet only the database pool's limits.
      writeFileSync(file, 'DB_POOL_SIZE=2\nDB_MAX_OVERFLOW=4\nDB_POOL_TIMEOUT=10\nREDIS_MAX_CONNECTIONS=8\n');
      const resizing = await startApp({ POOL_CONFIG_FILE: file });
      const read = async (): Promise<string> => (await fetch(`${resizing.base}/metrics`)).text();
      const burst = async (n: number, hold = 0.5): Promise<number[]> =>
        Promise.all(
          Array.from({ length: n }, async () => {
            const res = await fetch(`${resizing.base}/?hold=${hold}`);
            await res.text();
            return res.status;
          }),
        );
      const opened = async (): Promise<number | undefined> =>
        sample(await read(), 'voiceassist_db_connections_opened_total');
      try {
        // Six at once on 2 + 4: six connections opened, the four overflow ones closed on return.
        expect(await burst(6)).toEqual(Array.from({ length: 6 }, () => 200));
        expect(await opened()).toBe(6);
        expect(connectionsOf(resizing.process, 0)).toBe(2);

        // Grown while busy (for 4 s, across the file poll of 1 s): the six busy ones are kept as they
        // come back, none is opened for the resize.
        const busy = burst(6, 4);
        await eventually(async () => ((await opened()) === 10 ? true : undefined), 10_000, 'six connections busy');
        writeFileSync(file, 'DB_POOL_SIZE=6\nDB_MAX_OVERFLOW=2\nDB_POOL_TIMEOUT=10\nREDIS_MAX_CONNECTIONS=10\n');
        const resized = await atGeneration(read, 1);
        expect(samples(resized, gauges)).toEqual({
          size: 6,
          maxOverflow: 2,
          redisMax: 10,
          generation: 1,
          reloadErrors: 0,
        });
        expect(sample(resized, 'voiceassist_db_pool_draining_connections')).toBe(0);
        expect(await busy).toEqual(Array.from({ length: 6 }, () => 200));
        expect({ open: connectionsOf(resizing.process, 0), newEngine: connectionsOf(resizing.process, 1) }).toEqual({
          open: 6,
          newEngine: 0,
        });
        expect(await burst(6)).toEqual(Array.from({ length: 6 }, () => 200));
        expect(await opened()).toBe(10);

        // Shrunk to 1 + 2 while the six warm ones are busy: the three above the new capacity are
        // reported as draining until they come back, then closed with the idle ones above size 1.
        const busyAtShrink = burst(6, 4);
        await eventually(
          async () => (sample(await read(), 'voiceassist_db_pool_checked_out') === 6 ? true : undefined),
          10_000,
          'six warm connections busy',
        );
        writeFileSync(file, 'DB_POOL_SIZE=1\nDB_MAX_OVERFLOW=2\nDB_POOL_TIMEOUT=10\nREDIS_MAX_CONNECTIONS=10\n');
        const shrunk = await atGeneration(read, 2);
        expect(sample(shrunk, 'voiceassist_db_pool_draining_connections')).toBe(3);
        expect(await busyAtShrink).toEqual(Array.from({ length: 6 }, () => 200));
        expect(sample(await read(), 'voiceassist_db_pool_draining_connections')).toBe(0);
        expect({ open: connectionsOf(resizing.process, 0), opened: await opened() }).toEqual({ open: 1, opened: 10 });
      } finally {
        await stopApp(resizing.process);
      }
    });

    it('a malformed file is counted and ignored (SIGHUP re-reads it); a corrected one applies', async () => {
      const file = join(state, 'pool.conf');
      writeFileSync(file, 'DB_POOL_SIZE=3\nREDIS_MAX_CONNECTIONS=5\n');
      const reloading = await startApp({ POOL_CONFIG_FILE: file, DB_MAX_OVERFLOW: '1' });
      const read = async (): Promise<Record<string, number | undefined>> =>
        samples(await (await fetch(`${reloading.base}/metrics`)).text(), gauges);
      try {
        expect(await read()).toEqual({ size: 3, maxOverflow: 1, redisMax: 5, generation: 0, reloadErrors: 0 });
        writeFileSync(file, 'DB_POOL_SIZE=3\nDB_POOL_SZE=30\n');
        await eventually(
          async () => ((await read()).reloadErrors === 1 ? true : undefined),
          10_000,
          'the malformed file rejected',
        );
        expect(await read()).toEqual({ size: 3, maxOverflow: 1, redisMax: 5, generation: 0, reloadErrors: 1 });
        // SIGHUP re-reads the file even though it has not changed since.
        reloading.process.kill('SIGHUP');
        await eventually(
          async () => ((await read()).reloadErrors === 2 ? true : undefined),
          10_000,
          'SIGHUP re-read the file',
        );
        writeFileSync(file, 'DB_POOL_SIZE=6\n');
        await eventually(
          async () => ((await read()).generation === 1 ? true : undefined),
          10_000,
          'the corrected file applied',
        );
        expect(await read()).toEqual({ size: 6, maxOverflow: 1, redisMax: 50, generation: 1, reloadErrors: 2 });
        expect(await (await fetch(`${reloading.base}/?hold=0.01`)).text()).toBe('{"ok": true}');
      } finally {
        await stopApp(reloading.process);
      }
    });

    it('a malformed file at start is fatal: exit 2 with the line to fix', () => {
      const file = join(state, 'bad-pool.conf');
      writeFileSync(file, 'DB_POOL_SIZE=16\nREDIS_MAX_CONNECTIONS=0\n');
      const run = spawnSync('/usr/bin/python3', [join(repoRoot, 'demo/workload/app.py')], {
        env: {
          PATH: '/usr/bin:/bin',
          PYTHONDONTWRITEBYTECODE: '1',
          POOL_CONFIG_FILE: file,
          DATABASE_URL: env.DATABASE_URL ?? '',
          REDIS_URL: env.REDIS_URL ?? '',
        },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect({ status: run.status, stderr: run.stderr.trim() }).toEqual({
        status: 2,
        stderr: `app: POOL_CONFIG_FILE ${file} line 2: REDIS_MAX_CONNECTIONS='0' is not an integer >= 1`,
      });
    });
  });
});
