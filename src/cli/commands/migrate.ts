import type { Command } from 'commander';
import { openDatabase } from '../../persistence/index.js';
import { migrationState, whereOptions, withDatabase, type WhereFlags } from '../database.js';
import { print } from '../output.js';

/**
 * `concordat migrate`: runs Concordat's migrations on the database of
 * `--url` / `DATABASE_URL`, or on the embedded PostgreSQL of `--data`
 * (default `./.concordat`), creating that cluster and its `--database` when
 * they do not exist — the one command that may. Idempotent: what is applied
 * is recorded in `concordat_migrations`, so a second run applies nothing.
 * Runs under the same advisory lock as an app's start, so it can run while
 * apps start. Prints the migrations it applied, or that none was pending.
 */
export function registerMigrateCommand(program: Command): void {
  whereOptions(program.command('migrate').description("create or update Concordat's schema (idempotent)")).action((flags: WhereFlags) =>
    withDatabase(
      flags,
      async ({ db, where }) => {
        const before = await migrationState(db);
        // openDatabase migrates under the advisory lock apps take at start.
        const migrated = await openDatabase({ url: db.url, poolSize: 1, runMigrations: true });
        await migrated.close();
        const after = await migrationState(db);
        const applied = after.known.filter((name) => after.applied?.has(name) === true && before.applied?.has(name) !== true);
        if (applied.length === 0) {
          print(`Concordat's schema in ${where} is up to date: all ${after.known.length} migrations were applied before, nothing to apply`);
          return;
        }
        print([`applied ${applied.length} migration(s) to ${where}:`, ...applied.map((name) => `  ${name}`)].join('\n'));
      },
      { create: true },
    ),
  );
}
