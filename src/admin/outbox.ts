import type { DataSource } from 'typeorm';

/** One outbox shard: its backlog and its lease (`concordat.outbox_shard`). */
export interface OutboxShardStatus {
  shard: number;
  /** Rows waiting for the relay, counted up to the count limit ({@link OutboxStatusOptions.backlogCountMax}). */
  backlogRows: number;
  /** True when the count stopped at the limit: there are at least `backlogRows`. */
  backlogCapped: boolean;
  /** Age of the shard's oldest waiting row by the database's clock, in ms; 0 when none waits. */
  oldestAgeMs: number;
  /** The relay holding the lease, or null when none does or it expired. */
  owner: string | null;
  /** Time left on the lease in ms (negative: expired that long ago); null when it was never taken. */
  leaseRemainingMs: number | null;
  /** Fencing epoch: incremented each time the lease changes hands. */
  epoch: number;
}

/** One relay of `concordat.outbox_relay`. */
export interface OutboxRelayStatus {
  relayId: string;
  startedAt: Date;
  /** When its membership expires unless renewed (every renewal interval while it runs). */
  expiresAt: Date;
  /** False when the membership expired: the relay stopped or is cut off from the database. */
  alive: boolean;
  /** Shards whose live lease it holds, ascending. */
  shards: number[];
}

/** The outbox as `concordat outbox status` and the console show it. */
export interface OutboxStatus {
  /** The database's clock when it was read. */
  at: Date;
  /** Sum of the shards' backlogs (a lower bound when `backlogCapped`). */
  backlogRows: number;
  backlogCapped: boolean;
  /** Age of the oldest waiting row of any shard, in ms; 0 when the outbox is empty. */
  oldestAgeMs: number;
  /** Rows the log refused for good (`concordat.outbox_failed`), counted up to the count limit. */
  failedRows: number;
  /** Every shard (0..255), ascending. */
  shards: OutboxShardStatus[];
  /** Every relay with a membership row, by ID. */
  relays: OutboxRelayStatus[];
}

/** Options of {@link outboxStatus}. */
export interface OutboxStatusOptions {
  /**
   * Rows counted per shard at most: the count walks the (shard, seq) index,
   * so a huge backlog costs at most this many index entries per shard.
   * @default 10000 (range 1..10000000)
   */
  backlogCountMax?: number;
}

const BACKLOG_COUNT_MAX_DEFAULT = 10_000;
const BACKLOG_COUNT_MAX_LIMIT = 10_000_000;

interface ShardRow {
  shard: number;
  backlog: string;
  age_ms: number | null;
  owner: string | null;
  live: boolean;
  lease_ms: number | null;
  epoch: string;
}

interface RelayRow {
  relay_id: string;
  started_at: Date;
  expires_at: Date;
  alive: boolean;
}

/**
 * Backlog and oldest age per outbox shard, the shards' leases and the relays
 * (see `outbox/shard-leases.ts` for what leases and memberships mean), read
 * in one repeatable-read snapshot. It reads no payload and scans no table:
 * each shard's backlog and oldest row come from the `(shard, seq)` index,
 * the count stopping at `backlogCountMax`. Times are the database's clock.
 *
 * @throws the driver's error when the database is unreachable or lacks Concordat's schema
 *   (the CLI checks the schema first and says so)
 */
export async function outboxStatus(dataSource: DataSource, options: OutboxStatusOptions = {}): Promise<OutboxStatus> {
  const cap = options.backlogCountMax ?? BACKLOG_COUNT_MAX_DEFAULT;
  if (!Number.isInteger(cap) || cap < 1 || cap > BACKLOG_COUNT_MAX_LIMIT) {
    throw new RangeError(`backlogCountMax must be an integer in 1..${BACKLOG_COUNT_MAX_LIMIT} (got ${cap})`);
  }
  return dataSource.transaction('REPEATABLE READ', async (manager) => {
    const [{ at }] = await manager.query<[{ at: Date }]>(`SELECT clock_timestamp() AS at`);
    const shardRows = await manager.query<ShardRow[]>(
      `SELECT s.shard, b.backlog,
              extract(epoch FROM $2::timestamptz - o.created_at) * 1000 AS age_ms,
              s.owner, s.expires_at > $2::timestamptz AS live,
              CASE WHEN s.expires_at = '-infinity' THEN NULL ELSE extract(epoch FROM s.expires_at - $2::timestamptz) * 1000 END AS lease_ms,
              s.epoch
         FROM concordat.outbox_shard s
         CROSS JOIN LATERAL (SELECT count(*) AS backlog FROM (SELECT 1 FROM concordat.outbox WHERE shard = s.shard LIMIT $1) capped) b
         LEFT JOIN LATERAL (SELECT created_at FROM concordat.outbox WHERE shard = s.shard ORDER BY seq LIMIT 1) o ON true
        ORDER BY s.shard`,
      [cap, at],
    );
    const relayRows = await manager.query<RelayRow[]>(
      `SELECT relay_id, started_at, expires_at, expires_at > $1::timestamptz AS alive FROM concordat.outbox_relay ORDER BY relay_id`,
      [at],
    );
    const [{ failed }] = await manager.query<[{ failed: string }]>(`SELECT count(*) AS failed FROM (SELECT 1 FROM concordat.outbox_failed LIMIT $1) capped`, [
      cap,
    ]);
    return summarize(at, shardRows, relayRows, Number(failed), cap);
  });
}

function summarize(at: Date, shardRows: ShardRow[], relayRows: RelayRow[], failedRows: number, cap: number): OutboxStatus {
  const shards: OutboxShardStatus[] = shardRows.map((row) => {
    const backlogRows = Number(row.backlog);
    return {
      shard: Number(row.shard),
      backlogRows,
      backlogCapped: backlogRows >= cap,
      oldestAgeMs: row.age_ms === null ? 0 : Math.max(0, Math.round(Number(row.age_ms))),
      owner: row.live ? row.owner : null,
      leaseRemainingMs: row.lease_ms === null ? null : Math.round(Number(row.lease_ms)),
      epoch: Number(row.epoch),
    };
  });
  const relays = relayRows.map((row) => ({
    relayId: row.relay_id,
    startedAt: row.started_at,
    expiresAt: row.expires_at,
    alive: row.alive,
    shards: shards.filter((s) => s.owner === row.relay_id).map((s) => s.shard),
  }));
  return {
    at,
    backlogRows: shards.reduce((sum, s) => sum + s.backlogRows, 0),
    backlogCapped: shards.some((s) => s.backlogCapped),
    oldestAgeMs: shards.reduce((max, s) => Math.max(max, s.oldestAgeMs), 0),
    failedRows,
    shards,
    relays,
  };
}
