import { z } from 'zod';
import { compileOptions, integerIn } from './compile.js';

/** Options of `startEmbeddedPostgres` (`persistence/embedded-postgres.ts`). */
export interface EmbeddedPostgresOptions {
  /** Cluster data directory. Created on first start. */
  dataDir: string;
  /** TCP port on 127.0.0.1. @default a free port chosen at start */
  port?: number;
  /**
   * `max_prepared_transactions`. Range 1..10000. @default 200, as many as
   * `maxConnections` by default, as PostgreSQL's documentation advises for
   * servers that use prepared transactions. A 2PC branch's prepared
   * transaction outlives its session (the participant prepares, returns the
   * connection and takes the next command), so the count follows the 2PC
   * branches awaiting their decision, not the connections: the order demo
   * peaks at about 60 with 100 orders in flight and about 100 with 1,200 at
   * once, close to or above the former 64. Each slot costs a little shared
   * memory (PGPROC and `max_locks_per_transaction` lock-table entries).
   */
  maxPreparedTransactions?: number;
  /** `max_connections`. Range 20..10000 (not checked here: PostgreSQL refuses what it cannot use). @default 200 */
  maxConnections?: number;
}

const schema = z.object({
  dataDir: z.string(),
  port: z.number().optional(),
  maxPreparedTransactions: integerIn(1, 10_000).default(200),
  // Passed to PostgreSQL as it is, as before this schema.
  maxConnections: z.number().default(200),
});

/** {@link EmbeddedPostgresOptions} with every default applied (`port` stays optional: a free one is chosen at start). */
export type CompiledEmbeddedPostgresOptions = z.output<typeof schema>;

/**
 * Validates and fills in {@link EmbeddedPostgresOptions}.
 * @throws ConcordatError CONFIG_INVALID naming the option, e.g.
 *   `invalid options: embeddedPostgres.maxPreparedTransactions: must be an integer in 1..10000 (got 0)`
 */
export function compileEmbeddedPostgresOptions(options: EmbeddedPostgresOptions): CompiledEmbeddedPostgresOptions {
  return compileOptions(schema, options, 'embeddedPostgres');
}
