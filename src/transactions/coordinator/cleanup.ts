/**
 * Batched deletion of what global transactions leave behind, so that the
 * fence, branch and timeline tables stay small without a long transaction or
 * a lock that writers would wait on: each batch is its own short statement,
 * picks at most `batchRowsMax` rows by `ctid`, skips rows another session has
 * locked (`SKIP LOCKED`), and the loop stops after `batchesMax` batches.
 * Several coordinator instances can run it at once.
 *
 * @module
 */

import type { DataSource } from 'typeorm';

/** Bounds of one cleanup call (see the file header). */
export interface CleanupLimits {
  /** Rows per batch. */
  batchRowsMax: number;
  /** Batches per call. */
  batchesMax: number;
}

/**
 * Deletes fence rows whose global transaction is over, once they are older
 * than `retentionMs`:
 * - a row of a global transaction this database knows ended (or of one it
 *   does not hold at all, when the row is in a final state: confirmed,
 *   cancelled, committed, rolled back, or a Try that failed);
 * - never a row of a global transaction still active here, and never a
 *   TRIED row of a global transaction this database does not hold (its
 *   coordinator lives elsewhere and may still confirm it).
 *
 * The retention must exceed the time a command can still be redelivered
 * (the log's retention, the inbox's dedup window): a Try that arrived after
 * its fence row was deleted could no longer be refused.
 *
 * @returns rows deleted.
 */
export async function cleanupFences(dataSource: DataSource, retentionMs: number, limits: CleanupLimits): Promise<number> {
  return batched(limits, async () => {
    const rows: Array<{ deleted: number }> = await dataSource.query(
      `WITH gone AS (
         DELETE FROM concordat.fence
          WHERE ctid = ANY (ARRAY(
            SELECT f.ctid FROM concordat.fence f
             WHERE f.updated_at < now() - make_interval(secs => $1::double precision / 1000)
               AND NOT EXISTS (SELECT 1 FROM concordat.global_transaction g WHERE g.id = f.global_tx_id AND g.ended_at IS NULL)
               AND (f.state <> 'TRIED' OR EXISTS (SELECT 1 FROM concordat.global_transaction g WHERE g.id = f.global_tx_id))
             LIMIT $2
               FOR UPDATE SKIP LOCKED))
         RETURNING 1)
       SELECT count(*)::int AS deleted FROM gone`,
      [retentionMs, limits.batchRowsMax],
    );
    return rows[0]?.deleted ?? 0;
  });
}

/**
 * Deletes global transactions that ended more than `retentionMs` ago, with
 * their branches (cascade) and timeline. Transactions that ended FAILED are
 * kept until an operator retries them to an end: they are the ones somebody
 * must look at.
 *
 * @returns global transactions deleted.
 */
export async function cleanupHistory(dataSource: DataSource, retentionMs: number, limits: CleanupLimits): Promise<number> {
  return batched(limits, async () => {
    const rows: Array<{ deleted: number }> = await dataSource.query(
      `WITH victims AS (
         SELECT id FROM concordat.global_transaction
          WHERE ended_at < now() - make_interval(secs => $1::double precision / 1000) AND state <> 'FAILED'
          LIMIT $2
            FOR UPDATE SKIP LOCKED
       ), events AS (
         DELETE FROM concordat.global_tx_event WHERE global_tx_id IN (SELECT id FROM victims)
       ), gone AS (
         DELETE FROM concordat.global_transaction WHERE id IN (SELECT id FROM victims) RETURNING 1
       )
       SELECT count(*)::int AS deleted FROM gone`,
      [retentionMs, limits.batchRowsMax],
    );
    return rows[0]?.deleted ?? 0;
  });
}

async function batched(limits: CleanupLimits, deleteBatch: () => Promise<number>): Promise<number> {
  let total = 0;
  for (let batch = 0; batch < limits.batchesMax; batch++) {
    const deleted = await deleteBatch();
    total += deleted;
    if (deleted < limits.batchRowsMax) break;
  }
  return total;
}
