/**
 * Real PgBouncer: an ini edited by setPgbouncerSettings is accepted by
 * PgBouncer on RELOAD, the new pool settings take effect, and both settings
 * are changeable at runtime (no restart needed). Needs the Debian packages
 * pgbouncer and postgresql-client; no PostgreSQL server is contacted.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { readFile, writeFile } from 'node:fs/promises';
import { readPgbouncerSettings, setPgbouncerSettings } from '../../src/domain/pgbouncer-ini.js';
import { startPgbouncer, type RunningPgbouncer } from './support/pgbouncer.js';

const INI = [
  '; pgbouncer.ini as poolpilot finds it in a ConfigMap',
  '[databases]',
  '# nothing listens on port 1: PgBouncer only connects when a client uses the db',
  'app = host=127.0.0.1 port=1 dbname=app',
  '',
  '[pgbouncer]',
  'listen_addr = 127.0.0.1',
  'listen_port = 6432',
  'unix_socket_dir =',
  'auth_type = trust',
  'auth_file = userlist.txt',
  'admin_users = admin',
  '; owned by poolpilot:',
  'default_pool_size = 20',
  'max_client_conn = 100',
  '',
  '; end of pooler settings',
  '[users]',
  '',
].join('\n');

describe('PgBouncer RELOAD of an ini edited by setPgbouncerSettings', () => {
  let bouncer: RunningPgbouncer | undefined;

  beforeAll(async () => {
    bouncer = await startPgbouncer(INI);
  });

  afterAll(async () => {
    await bouncer?.stop();
  });

  const running = (): RunningPgbouncer => {
    if (bouncer === undefined) throw new Error('pgbouncer did not start');
    return bouncer;
  };

  it('starts with the values from the file', async () => {
    const config = await running().showConfig();
    expect(config.get('default_pool_size')).toBe('20');
    expect(config.get('max_client_conn')).toBe('100');
    expect(config.get('listen_port')).toBe(String(running().port));
  });

  it('applies default_pool_size 24 and max_client_conn 400 on RELOAD, both changeable', async () => {
    const { iniPath } = running();
    const before = await readFile(iniPath, 'utf8');
    const edited = setPgbouncerSettings(
      before,
      new Map([
        ['default_pool_size', 24],
        ['max_client_conn', 400],
      ]),
    );
    if (!edited.ok) throw new Error(`${edited.reason}: ${edited.message}`);
    expect(edited.changed).toBe(true);
    // Only the two value tokens changed; comments and other sections are intact.
    expect(edited.text).toBe(
      before
        .replace('default_pool_size = 20', 'default_pool_size = 24')
        .replace('max_client_conn = 100', 'max_client_conn = 400'),
    );
    await writeFile(iniPath, edited.text);

    await running().reload();

    const rows = await running().adminQuery('SHOW CONFIG');
    const byKey = new Map(rows.map((r) => [r.get('key'), r]));
    for (const [key, value] of [
      ['default_pool_size', '24'],
      ['max_client_conn', '400'],
    ] as const) {
      const row = byKey.get(key);
      expect({ key, value: row?.get('value'), changeable: row?.get('changeable') }).toEqual({
        key,
        value,
        changeable: 'yes',
      });
    }
    expect(readPgbouncerSettings(await readFile(iniPath, 'utf8'), ['default_pool_size', 'max_client_conn'])).toEqual({
      ok: true,
      values: new Map([
        ['default_pool_size', 24],
        ['max_client_conn', 400],
      ]),
    });
    expect(running().logs()).not.toMatch(/ERROR|FATAL/);
  });

  it('a second identical edit is a no-op and RELOAD keeps the values', async () => {
    const { iniPath } = running();
    const text = await readFile(iniPath, 'utf8');
    expect(
      setPgbouncerSettings(
        text,
        new Map([
          ['default_pool_size', 24],
          ['max_client_conn', 400],
        ]),
      ),
    ).toEqual({ ok: true, text, changed: false });
    await running().reload();
    const config = await running().showConfig();
    expect([config.get('default_pool_size'), config.get('max_client_conn')]).toEqual(['24', '400']);
  });

  it('RELOAD of a value the editor refuses is acknowledged, yet resets settings to defaults (why we refuse)', async () => {
    const { iniPath } = running();
    const good = await readFile(iniPath, 'utf8');
    // An inline comment: PgBouncer has none, so the value is "30 ; note".
    const bad = good.replace('default_pool_size = 24', 'default_pool_size = 30 ; note');
    expect(readPgbouncerSettings(bad, ['default_pool_size'])).toMatchObject({ ok: false, reason: 'UnparsableValue' });
    await writeFile(iniPath, bad);
    try {
      await running().reload();
      const config = await running().showConfig();
      // Not the last good 24/400: the failing line and those after it fall back to compiled-in defaults.
      expect([config.get('default_pool_size'), config.get('max_client_conn')]).toEqual(['20', '100']);
      expect(running().logs()).toMatch(
        /invalid value "30 ; note" for parameter default_pool_size[\s\S]*config file loading failed/,
      );
    } finally {
      await writeFile(iniPath, good);
    }
    await running().reload();
    const restored = await running().showConfig();
    expect([restored.get('default_pool_size'), restored.get('max_client_conn')]).toEqual(['24', '400']);
  });
});
