import { z } from 'zod';
import { compileOptions, integerIn } from './compile.js';

/**
 * Options of a dispatcher (`runtime/dispatcher/`): how many messages share a
 * handler transaction and how many such transactions of one consumer group
 * run at once. Given as `AppOptions.dispatcher`.
 */
export interface DispatcherOptions {
  /**
   * Most messages handled in one database transaction when the transport
   * delivers several records of a partition at once; 1 handles every
   * message in a transaction of its own. Every message of a batch may take
   * a savepoint (a TCC Try, a saga step, a nested `manager.transaction()`),
   * and PostgreSQL keeps up to 64 subtransaction IDs per transaction in
   * shared memory before every snapshot in the database has to look them up
   * in `pg_subtrans`; 32 stays under that. Range 1..10000. @default 32
   */
  batchRecordsMax?: number;
  /**
   * Most handler transactions of one consumer group in flight at once in
   * this process. The records its partitions deliver while those run share
   * the next transaction (group commit, up to `batchRecordsMax` messages;
   * see `runtime/group-commit.ts`).
   *
   * A group runs one transaction at a time until that is not enough: one
   * more goes in flight only after a *full* transaction (`batchRecordsMax`
   * messages) committed while more work waited, and one fewer after a
   * transaction with room. So under a light or moderate load every message
   * still shares one transaction at a time, which cannot wait on another of
   * its group's row locks or deadlock with it, and costs the least per
   * message; a backlog of independent messages (catch-up after a restart, a
   * burst) spreads over several connections. A transaction running beside
   * others gets a lock timeout of `GUARDED_LOCK_TIMEOUT_MS` (50 ms,
   * `runtime/dispatcher/options.ts`), and a conflict (that timeout, a
   * deadlock, a serialization failure) brings the group back to one at a
   * time for 1 s, doubling with each conflict up to 60 s: handlers whose
   * messages write the same few rows fall back to one transaction at a time.
   *
   * Measured (`bench:outbox`, one-insert handlers on 8 partitions, a
   * backlog): 1 is bound by one connection's round trips, about 8,500
   * messages/s on the development machine, against 18,000 with 4. On the
   * order saga at 64 orders in flight the transactions hold 5–6 messages and
   * stay one at a time whatever this is. Each transaction in flight holds a
   * connection of the pool (`database.poolSize`). Range 1..64. @default 4
   */
  concurrentTransactionsMax?: number;
}

/** Default of {@link DispatcherOptions.batchRecordsMax}. */
export const DISPATCH_BATCH_RECORDS_DEFAULT = 32;

/** Default of {@link DispatcherOptions.concurrentTransactionsMax}. */
export const DISPATCH_CONCURRENT_TRANSACTIONS_DEFAULT = 4;

const schema = z.object({
  batchRecordsMax: integerIn(1, 10_000).default(DISPATCH_BATCH_RECORDS_DEFAULT),
  concurrentTransactionsMax: integerIn(1, 64).default(DISPATCH_CONCURRENT_TRANSACTIONS_DEFAULT),
});

/** {@link DispatcherOptions} with every default applied. */
export type CompiledDispatcherOptions = z.output<typeof schema>;

/**
 * Validates and fills in {@link DispatcherOptions}.
 * @throws ConcordatError CONFIG_INVALID naming the option, e.g.
 *   `invalid options: dispatcher.concurrentTransactionsMax: must be an integer in 1..64 (got 0)`
 */
export function compileDispatcherOptions(options: DispatcherOptions = {}): CompiledDispatcherOptions {
  return compileOptions(schema, options, 'dispatcher');
}
