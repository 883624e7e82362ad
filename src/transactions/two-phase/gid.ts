/**
 * Global identifiers of prepared transactions (`PREPARE TRANSACTION '<gid>'`):
 * `concordat:<participant>:<global transaction ID>:<branch ID>`. The
 * participant name comes first so that a participant finds its own prepared
 * transactions with a prefix; the database is in `pg_prepared_xacts` too, as
 * prepared transactions are cluster-wide. PostgreSQL allows 199 bytes; with
 * participant names of at most {@link XA_PARTICIPANT_NAME_MAX} characters a
 * gid is at most 160.
 *
 * @module
 */

import type { EntityManager } from 'typeorm';

/** Longest 2PC participant name, in characters (`[a-zA-Z0-9._-]`), so that a gid stays within PostgreSQL's 199 bytes. */
export const XA_PARTICIPANT_NAME_MAX = 100;

const GID = /^concordat:([a-zA-Z0-9._-]{1,100}):([0-9a-f-]{36}):(\d{1,9})$/;

/** `concordat:<participant>:`, the prefix of every gid of `participant`. */
export function gidPrefix(participant: string): string {
  return `concordat:${participant}:`;
}

/**
 * The gid of a branch's prepared transaction.
 * @throws Error when the parts do not make a well-formed gid (a participant name or ID that escaped validation: a bug)
 */
export function gidFor(participant: string, globalTxId: string, branchId: number): string {
  const gid = `${gidPrefix(participant)}${globalTxId}:${branchId}`;
  // Inlined in SQL (PREPARE TRANSACTION takes no parameters): the pattern admits no quote.
  if (!GID.test(gid)) throw new Error(`assertion failed: '${gid}' is not a well-formed gid`);
  return gid;
}

/** The parts of a Concordat gid; undefined for any other prepared transaction's gid (not Concordat's, or malformed). */
export function parseGid(gid: string): { participant: string; globalTxId: string; branchId: number } | undefined {
  const match = GID.exec(gid);
  if (match === null) return undefined;
  return { participant: match[1]!, globalTxId: match[2]!, branchId: Number(match[3]) };
}

/** Whether `gid` is prepared in this database. */
export async function isPrepared(manager: EntityManager, gid: string): Promise<boolean> {
  const rows: unknown[] = await manager.query(`SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()`, [gid]);
  return rows.length > 0;
}

/** The gids of `participant` prepared in this database, oldest first. */
export async function preparedGids(manager: EntityManager, participant: string): Promise<string[]> {
  const rows: Array<{ gid: string }> = await manager.query(
    `SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1) ORDER BY prepared`,
    [gidPrefix(participant)],
  );
  return rows.map((row) => row.gid);
}
