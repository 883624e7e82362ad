/*
 * The outbox relay of one process: the shards it owns (leases), its lanes (each of which reads, publishes and deletes its
 * shards' rows: lane.ts), its wake-ups (in memory and LISTEN), its counts, and the readings of the outbox's lag.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { compileRelayOptions, type CompiledRelayOptions, type RelayOptions } from '../config/index.js';
import { describeError } from '../errors.js';
import { createLogger, type Logger } from '../observability/index.js';
import type { Transport } from '../transport/index.js';
import { RelayLane, type ClaimedRow, type LaneHost } from './lane.js';
import { outboxMetrics, type OutboxMetrics } from './metrics.js';
import { isScheduledNotification, OUTBOX_CHANNEL, outboxNotifierFor, shardsOfNotification, type OutboxNotifier } from './notifier.js';
import { ScheduledDelivery } from './scheduled.js';
import { ShardLeases } from './shard-leases.js';

/** What the relay needs of the database: the pool and a URL for its LISTEN connection. */
export interface RelayDatabase {
  readonly dataSource: DataSource;
  readonly url: string;
}

/** How far behind the outbox is. */
export interface OutboxLag {
  /** Rows not yet published (all shards, all relays). */
  backlogRows: number;
  /** Age of the oldest unpublished row by the database's clock, in ms; 0 when the outbox is empty. */
  oldestAgeMs: number;
}

/** How many messages wait in `concordat.outbox_scheduled`, and how late the earliest due one is. */
export interface ScheduledLag {
  /**
   * Scheduled messages not yet moved into the outbox (all shards, all
   * relays), due or not: exact up to {@link SCHEDULED_COUNT_EXACT_MAX}; above
   * it, PostgreSQL's estimate of the table's live rows
   * (`pg_stat_user_tables.n_live_tup`, which trails commits by up to about
   * ten seconds), never less than the exact bound.
   */
  pendingMessages: number;
  /**
   * How long the earliest due message has been due without being moved, by
   * the database's clock, in ms; 0 when none is due. A value above
   * `relay.scheduleTickMs` plus a pass means the scheduler is behind, or no
   * relay owns the message's shard.
   */
  oldestDueLatenessMs: number;
}

/**
 * Up to this many pending scheduled messages are counted exactly: a count
 * that stops after this many rows costs the same however many are pending
 * (a million, in `bench:outbox`); above it the gauge reads the statistics'
 * estimate instead of scanning.
 */
export const SCHEDULED_COUNT_EXACT_MAX = 10_000;

/**
 * {@link OutboxRelay.scheduledLag}'s one statement: a count that stops after
 * `$1` rows; the statistics' live-row estimate; and the earliest
 * `deliver_at`, read from the due end of `outbox_scheduled_due
 * (deliver_at, seq)`, so none of the three grows with the rows pending.
 */
const SCHEDULED_LAG = `
  SELECT (SELECT count(*) FROM (SELECT 1 FROM concordat.outbox_scheduled LIMIT $1) AS capped)::int AS counted,
         (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'concordat.outbox_scheduled'::regclass)::float8 AS estimated,
         (SELECT extract(epoch FROM clock_timestamp() - deliver_at) * 1000
            FROM concordat.outbox_scheduled ORDER BY deliver_at, seq LIMIT 1)::float8 AS earliest_due_ago_ms`;

/** Optional collaborators of a relay. */
export interface RelayExtras {
  /** Where the relay's Prometheus metrics go. @default prom-client's default registry */
  metricsRegistry?: Registry;
  /** Parent of the relay's logger (the app's root). @default Concordat's own */
  logger?: Logger;
}

/**
 * Moves committed outbox rows to the log.
 *
 * **Ownership.** The outbox is split into 256 shards by a hash of the
 * partition key (`shard.ts`). Relays share the shards through leases
 * (`shard-leases.ts`): each owns about 256 / (live relays), a dead relay's
 * shards go to the others within `leaseMs + leaseRenewIntervalMs`, a relay
 * that stops releases its shards at once.
 *
 * **Parallelism.** A relay splits its shards over `lanes`; each lane reads,
 * publishes and removes one batch at a time (`lane.ts`), so batches of
 * different shards are in flight together and share the log's fsyncs.
 *
 * **Order.** Each key lives in one shard; a lane reads a shard's rows in
 * `seq` order, publishes them in that order in one call (the transport keeps
 * the order of records of one key), and deletes rows only after the log's
 * durable acknowledgement. Hence any relay that publishes a key publishes
 * its oldest rows not yet acknowledged, in order. Two relays publishing the
 * same rows at once (a lease that expired under a stalled relay) interleave
 * two in-order copies: the first occurrence of each message is still in
 * order, and consumers' inboxes drop the second. Rows are read without row
 * locks for that reason: `FOR UPDATE SKIP LOCKED` would let a second relay
 * skip a row another relay holds and publish the next row of the same key
 * first, which is exactly the reordering to avoid.
 *
 * What "order" means for rows of one key written by concurrent transactions:
 * `seq` is taken at insert, and messages are inserted at the end of their
 * transaction (`TransactionContext` writes them just before `COMMIT`), so a
 * transaction that waited for another's row lock, or began after the other
 * committed, publishes after it. Transactions that never saw each other are
 * concurrent, and either order is correct.
 *
 * **Failure.** A crash or a failed publish before the rows are deleted
 * leaves them to be published again: a duplicate is possible (the inbox
 * absorbs it), a loss is not. A slow log holds each lane at one batch in
 * flight (backpressure: the relay reads no more than it can publish; the
 * backlog waits in PostgreSQL, visible through {@link lag} and the
 * `concordat_outbox_*` metrics); a batch not acknowledged within
 * `publishTimeoutMs` counts as failed.
 *
 * **Scheduled messages.** Each relay also runs a {@link ScheduledDelivery}
 * for its shards: it moves rows of `concordat.outbox_scheduled` into the
 * outbox when they are due, after which they are ordinary rows here
 * (`scheduled.ts`).
 *
 * **Wake-up.** Writers in this process wake the lanes owning their shards in
 * memory; writers elsewhere send `NOTIFY concordat_outbox` after their commit
 * (`notifier.ts`); every lane also polls every `pollIntervalMs`.
 */
export class OutboxRelay implements LaneHost {
  readonly id: string;
  readonly options: CompiledRelayOptions;
  private readonly logger: Logger;
  private readonly leases: ShardLeases;
  private readonly lanes: RelayLane[];
  private readonly scheduler: ScheduledDelivery;
  private scheduledMovedTotal = 0;
  /** Topics the lanes made sure exist (see {@link LaneHost.knownTopics}). */
  readonly knownTopics = new Set<string>();
  private readonly notifier: OutboxNotifier;
  private readonly metrics: OutboxMetrics;
  private detachMetrics: (() => void) | undefined;
  private unregister: (() => void) | undefined;
  private listener: pg.Client | undefined;
  private relistenTimer: NodeJS.Timeout | undefined;
  private running = false;
  private publishedTotal = 0;

  constructor(
    private readonly database: RelayDatabase,
    /** Where the lanes publish. */
    readonly transport: Transport,
    options: RelayOptions = {},
    extras: RelayExtras = {},
  ) {
    this.options = compileRelayOptions(options);
    this.id = this.options.relayId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.logger = createLogger('outbox-relay', { relay: this.id }, extras.logger);
    this.notifier = outboxNotifierFor(database.dataSource);
    this.metrics = outboxMetrics(extras.metricsRegistry);
    this.lanes = Array.from({ length: this.options.lanes }, (_, index) => new RelayLane(index, this, this.logger));
    const isRunning = (): boolean => this.running;
    const ownedShards = (): typeof this.ownedShards => this.ownedShards;
    this.scheduler = new ScheduledDelivery(
      {
        options: this.options,
        databaseUrl: database.url,
        get isRunning() {
          return isRunning();
        },
        get ownedShards() {
          return ownedShards();
        },
        wakeShards: (shards) => this.wakeShards(shards),
        scheduledMoved: (count) => {
          this.scheduledMovedTotal += count;
          this.metrics.scheduledMoved.inc({ relay: this.id }, count);
        },
      },
      this.logger,
    );
    this.leases = new ShardLeases(
      database.dataSource,
      this.id,
      { leaseMs: this.options.leaseMs, renewIntervalMs: this.options.leaseRenewIntervalMs },
      (owned) => this.ownershipChanged(owned),
      this.logger,
    );
  }

  /** Rows this relay published since it started (counted when the log acknowledged them; their delete follows with the next read). */
  get published(): number {
    return this.publishedTotal;
  }

  /** Scheduled messages this relay moved into the outbox (due) since it started. */
  get scheduledMoved(): number {
    return this.scheduledMovedTotal;
  }

  /** Shards this relay owns now, ascending. */
  get ownedShards(): number[] {
    return [...this.leases.owned()].sort((a, b) => a - b);
  }

  /** Starts listening, takes a share of the shards, starts the lanes. Idempotent. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.notifier.configure(this.options.notifyIntervalMs);
    this.unregister = this.notifier.register({
      owns: (shard) => this.leases.owns(shard),
      wake: (shards) => this.wakeShards(shards),
      scheduled: (dueAtMs) => this.scheduler.scheduled(dueAtMs),
    });
    this.detachMetrics = this.metrics.attach(this);
    await this.listen();
    await this.leases.start();
    for (const lane of this.lanes) lane.start();
    this.scheduler.start();
  }

  /** Finishes the batches in flight, releases the shards, stops. Rows left behind wait for another relay or the next start. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.unregister?.();
    await this.scheduler.stop();
    await Promise.all(this.lanes.map((lane) => lane.stop()));
    await this.leases.stop();
    this.detachMetrics?.();
    this.metrics.shardsOwned.remove({ relay: this.id });
    clearTimeout(this.relistenTimer);
    this.relistenTimer = undefined;
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  /**
   * Backlog and age of the oldest unpublished row, for the whole outbox.
   * `count(*)` reads the table: about a second per ten million rows, so
   * call it for monitoring, not per message (the metrics cache it for 1 s).
   */
  async lag(): Promise<OutboxLag> {
    const [row]: Array<{ backlog: string; age_ms: number | null }> = await this.database.dataSource.query(
      `SELECT (SELECT count(*) FROM concordat.outbox) AS backlog,
              extract(epoch FROM clock_timestamp() - (SELECT created_at FROM concordat.outbox ORDER BY seq LIMIT 1)) * 1000 AS age_ms`,
    );
    return { backlogRows: Number(row?.backlog ?? 0), oldestAgeMs: Math.max(0, Math.round(Number(row?.age_ms ?? 0))) };
  }

  /**
   * Scheduled messages pending and the lateness of the earliest due one,
   * for the whole table (all shards): see {@link ScheduledLag}. One
   * statement whose cost does not grow with the number pending (a bounded
   * count, a statistics row, one index probe); the metrics call it at most
   * once a second.
   */
  async scheduledLag(): Promise<ScheduledLag> {
    const [row]: Array<{ counted: number; estimated: number | null; earliest_due_ago_ms: number | null }> = await this.database.dataSource.query(
      SCHEDULED_LAG,
      [SCHEDULED_COUNT_EXACT_MAX + 1],
    );
    const counted = row?.counted ?? 0;
    const pendingMessages = counted <= SCHEDULED_COUNT_EXACT_MAX ? counted : Math.max(counted, Math.round(row?.estimated ?? 0));
    return { pendingMessages, oldestDueLatenessMs: Math.max(0, Math.round(row?.earliest_due_ago_ms ?? 0)) };
  }

  // ------------------------------------------------------------ LaneHost

  get dataSource(): DataSource {
    return this.database.dataSource;
  }

  get databaseUrl(): string {
    return this.database.url;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** The owned shards that lane `index` serves. */
  shardsOfLane(index: number): number[] {
    const shards: number[] = [];
    for (const shard of this.leases.owned()) if (shard % this.lanes.length === index) shards.push(shard);
    return shards.sort((a, b) => a - b);
  }

  batchDone(rows: number, startedAt: number): void {
    this.publishedTotal += rows;
    this.metrics.published.inc({ relay: this.id }, rows);
    this.metrics.batchSeconds.observe({ relay: this.id }, (performance.now() - startedAt) / 1000);
  }

  batchFailed(): void {
    this.metrics.failures.inc({ relay: this.id });
  }

  rowsFailed(failed: ReadonlyArray<{ row: ClaimedRow; error: unknown }>): void {
    this.metrics.rowsFailed.inc({ relay: this.id }, failed.length);
    for (const { row, error } of failed) {
      this.logger.error(
        { err: describeError(error), seq: row.seq, messageId: row.headers.ce_id, topic: row.topic, key: row.partition_key },
        'the log refuses this outbox row for good; moved to concordat.outbox_failed',
      );
    }
  }

  // ------------------------------------------------------------ internals

  /** New ownership: lanes look at every shard they now own; shards given up wait for their lane's batch in flight. */
  private async ownershipChanged(owned: ReadonlySet<number>): Promise<void> {
    this.metrics.shardsOwned.set({ relay: this.id }, owned.size);
    this.scheduler.poke();
    await Promise.all(this.lanes.map((lane) => lane.settle()));
    for (const lane of this.lanes) lane.wake();
  }

  private wakeShards(shards: readonly number[] | undefined): void {
    if (shards === undefined) {
      for (const lane of this.lanes) lane.wake();
      return;
    }
    const byLane = new Map<number, number[]>();
    for (const shard of shards) {
      const index = shard % this.lanes.length;
      let list = byLane.get(index);
      if (list === undefined) byLane.set(index, (list = []));
      list.push(shard);
    }
    for (const [index, list] of byLane) this.lanes[index]!.wake(list);
  }

  /** A dedicated connection for LISTEN; on loss it reconnects, and the poll covers the gap. */
  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.database.url });
    client.on('notification', (message) => {
      if (this.notifier.isOwn(message.payload)) return; // this process's writers woke their local lanes already
      const scheduled = isScheduledNotification(message.payload);
      if (scheduled) this.scheduler.poke();
      const shards = shardsOfNotification(message.payload);
      if (scheduled && shards === undefined) return;
      this.wakeShards(shards?.filter((shard) => this.leases.owns(shard)) ?? undefined);
    });
    client.on('error', (error) => {
      this.logger.warn({ err: describeError(error) }, 'outbox LISTEN connection lost; polling until it is back');
      if (this.listener === client) this.listener = undefined;
      client.end().catch(() => undefined);
      this.scheduleRelisten();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
      this.listener = client;
    } catch (error) {
      // Start anyway: the poll relays rows until LISTEN works.
      client.end().catch(() => undefined);
      this.logger.warn({ err: describeError(error) }, 'outbox LISTEN failed; polling until it works');
      this.scheduleRelisten();
    }
  }

  /** One pending reconnection at a time. */
  private scheduleRelisten(): void {
    if (this.relistenTimer !== undefined) return;
    this.relistenTimer = setTimeout(() => {
      this.relistenTimer = undefined;
      this.relisten();
    }, this.options.retryBackoffMaxMs);
    this.relistenTimer.unref();
  }

  private relisten(): void {
    if (!this.running || this.listener !== undefined) return;
    void this.listen().then(() => {
      if (this.listener !== undefined) this.wakeShards(undefined);
    });
  }
}
