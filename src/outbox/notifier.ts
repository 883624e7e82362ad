import { randomBytes } from 'node:crypto';
import type { DataSource, EntitySubscriberInterface, QueryRunner, TransactionCommitEvent, TransactionRollbackEvent } from 'typeorm';
import { describeError } from '../errors.js';
import { createLogger } from '../observability/index.js';

/** The channel relays LISTEN on. */
export const OUTBOX_CHANNEL = 'concordat_outbox';

/** Default of `relay.notifyIntervalMs`. */
export const NOTIFY_INTERVAL_MS_DEFAULT = 10;

/** A relay running in this process, as the notifier sees it. */
export interface LocalRelay {
  /** Whether this relay currently owns `shard`. */
  owns(shard: number): boolean;
  /** New rows committed in these shards (all owned by this relay). */
  wake(shards: readonly number[]): void;
  /** Scheduled messages were committed; the earliest is due at about `dueAtMs` (this process's clock). */
  scheduled?(dueAtMs: number): void;
}

const QUERY_RUNNER_SHARDS = '__concordatOutboxShards';
const QUERY_RUNNER_DUE = '__concordatOutboxDueAt';
/** What this module keeps in a query runner's `data` (TypeORM types it `any`) until the transaction ends. */
interface RunnerData {
  [QUERY_RUNNER_SHARDS]?: number[];
  [QUERY_RUNNER_DUE]?: number;
}

/** The token a NOTIFY payload ends with (`,s`) when the commit wrote scheduled messages. */
const SCHEDULED_TOKEN = 's';

/**
 * Wakes outbox relays after a commit that wrote outbox rows.
 *
 * Why not a trigger that NOTIFYs inside the writing transaction (the first
 * cut did that): PostgreSQL serializes the commits of all transactions that
 * NOTIFY (a database-wide lock from `PreCommit_Notify` until the commit's
 * WAL flush is done), which defeats group commit and cut writer throughput
 * by two thirds with 32 writers. Instead:
 *
 * - relays in this process are woken directly, in memory, for the shards
 *   they own: no database work at all;
 * - for shards no local relay owns, one `NOTIFY concordat_outbox` is sent
 *   after the commit, outside the business transaction, at most once per
 *   `intervalMs` (the first at once, later ones gathered), with the shards in
 *   the payload so the relay that owns them wakes only those lanes;
 * - relays poll at `relay.pollIntervalMs` anyway, which covers a writer that
 *   died between its commit and its NOTIFY, and rows inserted by hand.
 *
 * A wake-up is only a hint: losing one delays a message by at most the poll
 * interval, and never loses it.
 *
 * One notifier per DataSource ({@link outboxNotifierFor}); it registers a
 * TypeORM subscriber so that rows written with `writeOutbox` inside any
 * TypeORM transaction on that DataSource wake relays when it commits.
 */
export class OutboxNotifier {
  /** Tags this process's NOTIFYs, so its own relays skip what they were already told. */
  readonly id = randomBytes(6).toString('hex');
  private readonly relays = new Set<LocalRelay>();
  private readonly pending = new Set<number>();
  /** Scheduled messages were committed since the last NOTIFY. */
  private pendingScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  private lastSentAt = 0;
  /** Callers of {@link idle} waiting for the pending wake-ups to go out. */
  private idleWaiters: Array<() => void> = [];
  private readonly logger = createLogger('outbox-notifier');

  constructor(
    private readonly dataSource: DataSource,
    private intervalMs: number = NOTIFY_INTERVAL_MS_DEFAULT,
  ) {}

  /** Sets the NOTIFY interval (the relay's `notifyIntervalMs`). */
  configure(intervalMs: number): void {
    this.intervalMs = intervalMs;
  }

  /** Adds a relay of this process; returns the function that removes it. */
  register(relay: LocalRelay): () => void {
    this.relays.add(relay);
    return () => this.relays.delete(relay);
  }

  /**
   * Resolves once no wake-up is waiting to be sent or being sent: every
   * commit reported before the call has been NOTIFYed (or its NOTIFY
   * failed, which the relays' poll covers). For tests and shutdown; it
   * never sends anything itself.
   */
  idle(): Promise<void> {
    if (this.timer === undefined && !this.sending && this.pending.size === 0 && !this.pendingScheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Whether `notificationPayload` came from this notifier. */
  isOwn(notificationPayload: string | undefined): boolean {
    return notificationPayload !== undefined && notificationPayload.startsWith(`${this.id}|`);
  }

  /**
   * Rows were inserted in these shards through `queryRunner` (and, with
   * `dueAtMs`, scheduled messages due at about that time): if it is in a
   * transaction, wake relays once it commits; otherwise now.
   */
  written(queryRunner: QueryRunner | undefined, shards: readonly number[], dueAtMs?: number): void {
    if (queryRunner === undefined || !queryRunner.isTransactionActive) {
      this.committed(shards, dueAtMs);
      return;
    }
    const stash = ((queryRunner.data as RunnerData)[QUERY_RUNNER_SHARDS] ??= []);
    stash.push(...shards);
    if (dueAtMs !== undefined) {
      const due = (queryRunner.data as RunnerData)[QUERY_RUNNER_DUE];
      (queryRunner.data as RunnerData)[QUERY_RUNNER_DUE] = due === undefined ? dueAtMs : Math.min(due, dueAtMs);
    }
  }

  /**
   * Rows in these shards were committed: wake their relays. With
   * `dueAtMs`, scheduled messages were committed too (the earliest due at
   * about that time): local relays' schedulers hear of it in memory, others
   * through the NOTIFY (its payload ends with `,s`).
   */
  committed(shards: Iterable<number>, dueAtMs?: number): void {
    const remote: number[] = [];
    const byRelay = new Map<LocalRelay, number[]>();
    for (const shard of new Set(shards)) {
      let local = false;
      for (const relay of this.relays) {
        if (!relay.owns(shard)) continue;
        local = true;
        let list = byRelay.get(relay);
        if (list === undefined) byRelay.set(relay, (list = []));
        list.push(shard);
      }
      if (!local) remote.push(shard);
    }
    for (const [relay, list] of byRelay) relay.wake(list);
    if (dueAtMs !== undefined) {
      for (const relay of this.relays) relay.scheduled?.(dueAtMs);
      // Relays elsewhere own shards too: their schedulers may have a row due sooner than they know.
      this.pendingScheduled = true;
    }
    if (remote.length === 0 && dueAtMs === undefined) return;
    for (const shard of remote) this.pending.add(shard);
    this.schedule();
  }

  /** @internal the TypeORM subscriber's hooks */
  afterCommit(queryRunner: QueryRunner): void {
    const shards = (queryRunner.data as RunnerData)[QUERY_RUNNER_SHARDS];
    if (shards === undefined) return;
    // A savepoint release also broadcasts AfterTransactionCommit: wait for the real commit.
    if (queryRunner.isTransactionActive) return;
    const dueAtMs = (queryRunner.data as RunnerData)[QUERY_RUNNER_DUE];
    delete queryRunner.data[QUERY_RUNNER_SHARDS];
    delete queryRunner.data[QUERY_RUNNER_DUE];
    this.committed(shards, dueAtMs);
  }

  /** @internal */
  afterRollback(queryRunner: QueryRunner): void {
    if (queryRunner.isTransactionActive) return;
    delete queryRunner.data[QUERY_RUNNER_SHARDS];
    delete queryRunner.data[QUERY_RUNNER_DUE];
  }

  private schedule(): void {
    if (this.timer !== undefined || this.sending) return;
    const waitMs = Math.max(0, this.lastSentAt + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.send();
    }, waitMs);
    this.timer.unref();
  }

  private async send(): Promise<void> {
    if ((this.pending.size === 0 && !this.pendingScheduled) || !this.dataSource.isInitialized) {
      this.pending.clear();
      this.pendingScheduled = false;
      this.settled();
      return;
    }
    const tokens: string[] = [...this.pending].map(String);
    if (this.pendingScheduled) tokens.push(SCHEDULED_TOKEN);
    this.pending.clear();
    this.pendingScheduled = false;
    this.sending = true;
    this.lastSentAt = Date.now();
    try {
      await this.dataSource.query(`SELECT pg_notify($1, $2)`, [OUTBOX_CHANNEL, `${this.id}|${tokens.join(',')}`]);
    } catch (error) {
      // Only a hint: the relays' poll picks the rows up.
      this.logger.debug({ err: describeError(error) }, 'outbox NOTIFY failed; relays will find the rows by polling');
    } finally {
      this.sending = false;
      if (this.pending.size > 0 || this.pendingScheduled) this.schedule();
      else this.settled();
    }
  }

  private settled(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * Parses a NOTIFY payload: the shards it names, or undefined for "any shard"
 * (an empty or foreign payload).
 */
export function shardsOfNotification(payload: string | undefined): number[] | undefined {
  if (payload === undefined) return undefined;
  const bar = payload.indexOf('|');
  if (bar < 0) return undefined;
  const shards = payload
    .slice(bar + 1)
    .split(',')
    .filter((text) => /^\d{1,3}$/.test(text))
    .map(Number)
    .filter((shard) => Number.isInteger(shard) && shard >= 0);
  return shards.length > 0 ? shards : undefined;
}

/** Whether a NOTIFY payload says that scheduled messages were committed. */
export function isScheduledNotification(payload: string | undefined): boolean {
  if (payload === undefined) return false;
  return payload.endsWith(`|${SCHEDULED_TOKEN}`) || payload.endsWith(`,${SCHEDULED_TOKEN}`);
}

const notifiers = new WeakMap<DataSource, OutboxNotifier>();

/** The notifier of a DataSource, created (and its TypeORM subscriber registered) on first use. */
export function outboxNotifierFor(dataSource: DataSource): OutboxNotifier {
  let notifier = notifiers.get(dataSource);
  if (notifier !== undefined) return notifier;
  notifier = new OutboxNotifier(dataSource);
  notifiers.set(dataSource, notifier);
  const subscriber: EntitySubscriberInterface = {
    afterTransactionCommit: (event: TransactionCommitEvent) => notifier.afterCommit(event.queryRunner),
    afterTransactionRollback: (event: TransactionRollbackEvent) => notifier.afterRollback(event.queryRunner),
  };
  // DataSource.subscribers is built at initialize; the broadcaster reads the array at each event.
  dataSource.subscribers.push(subscriber);
  return notifier;
}
