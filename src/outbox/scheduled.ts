import { describeError } from '../errors.js';
import { backoffMs } from '../util/index.js';
import { faultPoint, type Logger } from '../observability/index.js';
import { RelayConnection } from './relay-connection.js';

/** What the scheduler needs from its relay. */
export interface SchedulerHost {
  readonly options: { batchRowsMax: number; pollIntervalMs: number; scheduleTickMs: number; retryBackoffMs: number; retryBackoffMaxMs: number };
  readonly databaseUrl: string;
  readonly isRunning: boolean;
  /** Shards this relay owns now. */
  ownedShards: number[];
  /** Rows were moved into the outbox in these shards: let the lanes publish them. */
  wakeShards(shards: readonly number[]): void;
  /** `count` scheduled messages were moved into the outbox. */
  scheduledMoved(count: number): void;
}

/**
 * Moves the due rows of the owned shards from `concordat.outbox_scheduled`
 * into `concordat.outbox`, in one statement (and one transaction), oldest
 * `deliver_at` first: `$1` owned shards, `$2` most rows. Also answers in how
 * many ms (by the database's clock) the next row of those shards is due,
 * null when none is pending.
 *
 * `FOR UPDATE SKIP LOCKED`: a row locked by a `cancelScheduled` still in
 * progress is left for a later pass (if that transaction commits, the
 * message is cancelled; if it rolls back, the message is moved then), and
 * never waited for: the scheduler does not block on a user's transaction.
 *
 * `statement_timestamp()`, not `clock_timestamp()`: a stable function can
 * bound the index scan of `outbox_scheduled_due`, a volatile one cannot.
 */
const MOVE_DUE = `
  WITH due AS (
         SELECT message_id FROM concordat.outbox_scheduled
          WHERE deliver_at <= statement_timestamp() AND shard = ANY($1::smallint[])
          ORDER BY deliver_at, seq
          LIMIT $2
            FOR UPDATE SKIP LOCKED),
       moved AS (
         DELETE FROM concordat.outbox_scheduled s USING due WHERE s.message_id = due.message_id
         RETURNING s.message_id, s.topic, s.partition_key, s.shard, s.headers, s.payload, s.deliver_at, s.seq),
       inserted AS (
         INSERT INTO concordat.outbox (message_id, topic, partition_key, shard, headers, payload)
         SELECT message_id, topic, partition_key, shard, headers, payload FROM moved ORDER BY deliver_at, seq
         RETURNING shard)
  SELECT (SELECT array_agg(DISTINCT shard) FROM inserted) AS shards,
         (SELECT count(*) FROM inserted)::int AS moved,
         (SELECT extract(epoch FROM n.deliver_at - clock_timestamp()) * 1000
            FROM (SELECT deliver_at FROM concordat.outbox_scheduled
                   WHERE deliver_at > statement_timestamp() AND shard = ANY($1::smallint[])
                   ORDER BY deliver_at, seq
                   LIMIT 1) AS n)::float8 AS next_due_ms`;

/**
 * Delivery of scheduled messages (`publish(..., { deliverAt | delayMs })`):
 * one per relay, for the shards the relay owns.
 *
 * **Design, and why.** A scheduled message is a row of
 * `concordat.outbox_scheduled`, written in the publisher's transaction like
 * an outbox row (so it exists iff that transaction commits), with its due
 * time `deliver_at` and the same shard as its key. When the row is due, the
 * relay that owns its shard moves it into `concordat.outbox` in one
 * statement ({@link MOVE_DUE}), and from there it is an ordinary outbox row:
 * the lanes publish it, delete it after the log's durable acknowledgement,
 * and every guarantee of the outbox (per-key order, duplicate-not-loss on a
 * crash, leases between relays) applies unchanged. Chosen over
 *
 * - a timer topic in the log (a delay topic consumed and re-published when
 *   due): the log cannot hold a record back, so the consumer of that topic
 *   would have to buffer or re-read every pending message, and cancelling
 *   one would need a tombstone that every reader checks;
 * - RocketMQ's fixed delay levels (one queue per level, each FIFO): they
 *   bound the set of delays, while users want an arbitrary `deliverAt`.
 *
 * PostgreSQL's B-tree on `(deliver_at, seq)` already is a priority queue
 * with arbitrary keys, transactional inserts and cancels
 * (`cancelScheduled` is a DELETE in the caller's transaction), and a
 * crash-safe move (the DELETE and the outbox INSERT commit together). Each
 * pass reads only the due end of the index plus one row, so its cost does
 * not grow with the number of pending messages.
 *
 * **Timing.** After each pass the scheduler sleeps until the next row of its
 * shards is due (by the database's clock, so the clocks of the processes do
 * not matter), at least `scheduleTickMs` (due rows are moved in batches: at
 * 1,000 due per second a tick of 10 ms moves about 10 per statement) and at
 * most `pollIntervalMs` (the fallback poll). A message committed in this
 * process that is due sooner wakes it at once ({@link scheduled}); one from
 * another process through the outbox NOTIFY ({@link poke}).
 *
 * **Order.** A moved row takes its `seq` in the outbox when it is moved:
 * it is published after every message of its key committed before it was
 * moved, and before every message of its key committed after. Scheduled
 * messages of one key are moved in `(deliver_at, seq)` order. Exception:
 * a row skipped because a cancel held its lock, and then not cancelled, is
 * moved after later-due rows of its key that were moved meanwhile.
 *
 * **Failure.** A crash before the move's commit leaves the row scheduled; a
 * crash after it leaves it in the outbox, where the relay (this one after a
 * restart, or the next owner of the shard) publishes it. A failed pass is
 * retried with the relay's backoff.
 */
export class ScheduledDelivery {
  private loop: Promise<void> | undefined;
  private stopping = false;
  /** The scheduler's own connection, with asynchronous commit as the lanes' (`relay-connection.ts` says why): a move lost in a crash of PostgreSQL leaves the row scheduled, to be moved again. */
  private readonly connection: RelayConnection;
  private timer: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;
  /** When the current sleep ends, by this process's clock (ms since the epoch); 0 when not sleeping. */
  private wakeAtMs = 0;
  private pendingWake = false;
  /** Earliest due time (this process's clock) heard of during a pass, which the pass's snapshot may not show. */
  private heardDueAtMs = Infinity;
  private lastPassAtMs = 0;

  constructor(
    private readonly host: SchedulerHost,
    private readonly logger: Logger,
  ) {
    this.connection = new RelayConnection(host);
  }

  /** Starts the loop that moves due scheduled messages into the outbox, in the background; {@link stop} ends it. */
  start(): void {
    this.stopping = false;
    this.loop = this.run();
  }

  /** Ends the loop after its pass in flight; closes the connection. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loop;
    await this.connection.close();
  }

  /** A scheduled message due at about `dueAtMs` (this process's clock) was committed: wake in time for it. */
  scheduled(dueAtMs: number): void {
    if (this.wakeUp === undefined) {
      this.heardDueAtMs = Math.min(this.heardDueAtMs, dueAtMs);
      return;
    }
    if (dueAtMs < this.wakeAtMs) this.rearm(dueAtMs);
  }

  /** Scheduled messages were committed elsewhere, or ownership changed: look again soon (within a tick). */
  poke(): void {
    this.rearm(Date.now());
  }

  private rearm(atMs: number): void {
    if (this.wakeUp === undefined) {
      this.pendingWake = true;
      return;
    }
    const startMs = Math.max(atMs, this.lastPassAtMs + this.host.options.scheduleTickMs);
    this.arm(startMs - Date.now());
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.host.isRunning && !this.stopping) {
      let waitMs: number;
      try {
        waitMs = await this.pass();
        failures = 0;
      } catch (error) {
        failures++;
        const options = this.host.options;
        waitMs = backoffMs({ firstMs: options.retryBackoffMs, maxMs: options.retryBackoffMaxMs }, failures);
        this.logger.warn({ err: describeError(error), failures, delayMs: waitMs }, 'moving due scheduled messages failed; trying again');
      }
      if (waitMs > 0) await this.sleep(waitMs);
    }
  }

  /** Moves one batch of due rows; returns how long to wait before the next pass, in ms. */
  private async pass(): Promise<number> {
    const options = this.host.options;
    const shards = this.host.ownedShards;
    this.lastPassAtMs = Date.now();
    if (shards.length === 0) return options.pollIntervalMs;
    await faultPoint('scheduled.before-move');
    const result = await this.connection.query<{ shards: number[] | null; moved: number; next_due_ms: number | null }>(
      'concordat_scheduled_move_due',
      MOVE_DUE,
      [shards, options.batchRowsMax],
    );
    const row = result.rows[0]!;
    if (row.moved > 0) {
      await faultPoint('scheduled.after-move');
      this.host.scheduledMoved(row.moved);
      this.host.wakeShards(row.shards ?? []);
    }
    if (row.moved >= options.batchRowsMax) return 0;
    const untilDueMs = row.next_due_ms === null ? options.pollIntervalMs : Math.min(Math.max(0, Math.ceil(row.next_due_ms)), options.pollIntervalMs);
    return Math.max(untilDueMs, options.scheduleTickMs - (Date.now() - this.lastPassAtMs));
  }

  private sleep(waitMs: number): Promise<void> {
    if (this.stopping || !this.host.isRunning) return Promise.resolve();
    const tickLeftMs = this.lastPassAtMs + this.host.options.scheduleTickMs - Date.now();
    if (this.pendingWake) waitMs = Math.min(waitMs, tickLeftMs);
    if (this.heardDueAtMs !== Infinity) waitMs = Math.min(waitMs, Math.max(this.heardDueAtMs - Date.now(), tickLeftMs));
    this.pendingWake = false;
    this.heardDueAtMs = Infinity;
    if (waitMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.wakeUp = () => {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.wakeUp = undefined;
        this.wakeAtMs = 0;
        resolve();
      };
      this.arm(waitMs);
    });
  }

  /** (Re)sets the end of the current sleep to `waitMs` from now. */
  private arm(waitMs: number): void {
    clearTimeout(this.timer);
    const delay = Math.max(0, waitMs);
    this.wakeAtMs = Date.now() + delay;
    this.timer = setTimeout(() => this.wake(), delay);
  }

  private wake(): void {
    if (this.wakeUp !== undefined) this.wakeUp();
    else this.pendingWake = true;
  }
}
