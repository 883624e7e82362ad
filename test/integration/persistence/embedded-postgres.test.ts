import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type RunningPostgres } from '../../../src/persistence/embedded-postgres.js';

describe('embedded Postgres launcher', () => {
  const dataDir = join(tmpdir(), `concordat-embedded-pg-test-${process.pid}`);
  const started: RunningPostgres[] = [];

  afterAll(async () => {
    for (const server of started.reverse()) await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('starts a real server with the settings Concordat needs', async () => {
    const server = await startEmbeddedPostgres({ dataDir, maxPreparedTransactions: 7 });
    started.push(server);
    expect(server.owned).toBe(true);
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    const settings = await client.query(
      `SELECT name, setting FROM pg_settings WHERE name IN ('max_prepared_transactions', 'listen_addresses', 'fsync') ORDER BY name`,
    );
    await client.end();
    expect(settings.rows).toEqual([
      { name: 'fsync', setting: 'on' },
      { name: 'listen_addresses', setting: '127.0.0.1' },
      { name: 'max_prepared_transactions', setting: '7' },
    ]);
  });

  it('reuses a server that already runs on the same data directory', async () => {
    const again = await startEmbeddedPostgres({ dataDir });
    expect(again.owned).toBe(false);
    expect(again.port).toBe(started[0]!.port);
  });

  it('rejects an out-of-range option with the option name', async () => {
    await expect(startEmbeddedPostgres({ dataDir, maxPreparedTransactions: 0 })).rejects.toThrow(
      'invalid options: embeddedPostgres.maxPreparedTransactions: must be an integer in 1..10000 (got 0)',
    );
  });
});
