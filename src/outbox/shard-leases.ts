import { performance } from 'node:perf_hooks';
import type { DataSource } from 'typeorm';
import { describeError } from '../errors.js';
import type { Logger } from '../observability/index.js';
import { OUTBOX_SHARDS } from './shard.js';

/** How a relay holds its outbox shards: lease length and renewal interval, in ms. */
export interface ShardLeaseOptions {
  /** How long a lease lasts unless renewed, in ms. */
  leaseMs: number;
  /** Time between renewals, in ms (well under `leaseMs`). */
  renewIntervalMs: number;
}

/**
 * Called when the set of owned shards changes. For shards about to be given
 * up, it is awaited before they are released in the database, so the relay
 * can let its batches in flight on them finish.
 */
export type OwnershipListener = (owned: ReadonlySet<number>) => Promise<void> | void;

/**
 * Which outbox shards this relay owns: one lease per shard in
 * `concordat.outbox_shard`, and one membership row per live relay in
 * `concordat.outbox_relay`.
 *
 * Why leases in a table rather than advisory locks:
 * - A dead relay's shards move within a bound Concordat sets (`leaseMs` plus
 *   one renewal interval), whatever the network did. A session advisory lock
 *   is released only when PostgreSQL notices the session is gone: at once
 *   for a killed process on a live host, but after the server's TCP
 *   keepalive (two hours by default on Linux) for a host that vanished.
 * - Advisory locks are bound to a session, so they break behind a
 *   transaction-pooling proxy (PgBouncer) and need a dedicated connection
 *   per relay; a lease is a row any connection can renew.
 * - Sharing the shards fairly needs to know how many relays are alive: the
 *   membership rows say so, and the lease rows show who owns what
 *   (`SELECT * FROM concordat.outbox_shard`), which operators and the lag
 *   API can read.
 * - Exclusive ownership is not what keeps per-key order (see relay.ts: two
 *   relays publishing the same rows at once produce duplicates, never a
 *   reordering), so the short overlap a lease allows when a relay stalls past
 *   its expiry costs duplicates at worst, which the inbox absorbs.
 *
 * Each tick (every `renewIntervalMs`): refresh this relay's membership,
 * count the live relays, renew this relay's leases, then release shards
 * above its fair share (256 / relays, the remainder to the first relays in
 * ID order) or take free and expired ones up to it. Times are the
 * database's clock (`clock_timestamp()`), so relays need not agree on
 * theirs. Locally, ownership is trusted for `leaseMs` after the start of the
 * last successful renewal (a monotonic clock), so a relay cut off from the
 * database stops claiming rows when its leases may have moved.
 */
export class ShardLeases {
  private current: ReadonlySet<number> = new Set();
  private validUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private ticking: Promise<void> = Promise.resolve();
  private relayCount = 0;

  constructor(
    private readonly dataSource: DataSource,
    readonly relayId: string,
    private readonly options: ShardLeaseOptions,
    private readonly onChange: OwnershipListener,
    private readonly logger: Logger,
  ) {}

  /** Shards owned, or none when the last renewal is older than a lease. */
  owned(): ReadonlySet<number> {
    return performance.now() < this.validUntil ? this.current : EMPTY;
  }

  /** Whether this relay owns `shard` now (false once the last renewal is older than a lease). */
  owns(shard: number): boolean {
    return performance.now() < this.validUntil && this.current.has(shard);
  }

  /** Live relays at the last renewal (this one included). */
  get relays(): number {
    return this.relayCount;
  }

  /** Joins and takes a first share; keeps renewing until `stop()`. A database error is logged and retried. */
  async start(): Promise<void> {
    this.running = true;
    await this.tickSafely();
    this.schedule();
  }

  /** Stops renewing and releases every lease and the membership, so other relays take over at once. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.ticking;
    await this.setOwned(EMPTY);
    this.validUntil = 0;
    try {
      await this.dataSource.query(`UPDATE concordat.outbox_shard SET owner = NULL, expires_at = '-infinity' WHERE owner = $1`, [this.relayId]);
      await this.dataSource.query(`DELETE FROM concordat.outbox_relay WHERE relay_id = $1`, [this.relayId]);
    } catch (error) {
      this.logger.warn({ err: describeError(error) }, 'could not release outbox shard leases; they expire by themselves');
    }
  }

  /** Runs one renewal now (tests, and after an ownership change is wanted at once). */
  renewNow(): Promise<void> {
    this.ticking = this.ticking.then(() => this.tickSafely());
    return this.ticking;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      void this.renewNow().finally(() => this.schedule());
    }, this.options.renewIntervalMs);
    this.timer.unref();
  }

  private async tickSafely(): Promise<void> {
    if (!this.running) return;
    try {
      await this.tick();
    } catch (error) {
      this.logger.warn({ err: describeError(error) }, 'outbox shard lease renewal failed; will retry');
    }
  }

  private async tick(): Promise<void> {
    const startedAt = performance.now();
    const leaseMs = this.options.leaseMs;
    await this.dataSource.query(
      `INSERT INTO concordat.outbox_relay (relay_id, expires_at)
       VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond')
       ON CONFLICT (relay_id) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
      [this.relayId, leaseMs],
    );
    const members: Array<{ relay_id: string }> = await this.dataSource.query(
      `WITH gone AS (DELETE FROM concordat.outbox_relay WHERE expires_at < clock_timestamp())
       SELECT relay_id FROM concordat.outbox_relay WHERE expires_at >= clock_timestamp() ORDER BY relay_id`,
    );
    const ids = members.map((m) => m.relay_id);
    this.relayCount = ids.length;
    const quota = fairShare(ids.indexOf(this.relayId), Math.max(1, ids.length));
    const renewed = await this.shardsOf(
      `UPDATE concordat.outbox_shard SET expires_at = clock_timestamp() + $2 * interval '1 millisecond'
        WHERE owner = $1 RETURNING shard`,
      [this.relayId, leaseMs],
    );
    this.validUntil = startedAt + leaseMs;
    if (renewed.length > quota) {
      const excess = [...renewed].sort((a, b) => a - b).slice(quota);
      const keep = new Set(renewed.filter((shard) => !excess.includes(shard)));
      await this.setOwned(keep);
      await this.dataSource.query(`UPDATE concordat.outbox_shard SET owner = NULL, expires_at = '-infinity' WHERE owner = $1 AND shard = ANY($2::smallint[])`, [
        this.relayId,
        excess,
      ]);
      return;
    }
    const acquired =
      renewed.length < quota
        ? await this.shardsOf(
            `UPDATE concordat.outbox_shard
                SET owner = $1, expires_at = clock_timestamp() + $2 * interval '1 millisecond', epoch = epoch + 1
              WHERE shard IN (SELECT shard FROM concordat.outbox_shard
                               WHERE owner IS NULL OR expires_at < clock_timestamp()
                               ORDER BY shard LIMIT $3 FOR UPDATE SKIP LOCKED)
              RETURNING shard`,
            [this.relayId, leaseMs, quota - renewed.length],
          )
        : [];
    await this.setOwned(new Set([...renewed, ...acquired]));
  }

  /** Runs an `UPDATE ... RETURNING shard` (wrapped in a CTE: TypeORM returns `[rows, count]` for a bare UPDATE). */
  private async shardsOf(update: string, parameters: unknown[]): Promise<number[]> {
    const rows: Array<{ shard: number }> = await this.dataSource.query(`WITH changed AS (${update}) SELECT shard FROM changed`, parameters);
    return rows.map((row) => Number(row.shard));
  }

  private async setOwned(owned: ReadonlySet<number>): Promise<void> {
    const same = owned.size === this.current.size && [...owned].every((shard) => this.current.has(shard));
    if (same) return;
    const before = this.current.size;
    this.current = owned;
    this.logger.info({ shards: owned.size, before }, 'outbox shard ownership changed');
    await this.onChange(owned);
  }
}

const EMPTY: ReadonlySet<number> = new Set();

/** Shards for the relay at `index` (0-based, by ID) among `count` relays. */
export function fairShare(index: number, count: number, shards = OUTBOX_SHARDS): number {
  if (index < 0) return 0;
  return Math.floor(shards / count) + (index < shards % count ? 1 : 0);
}
