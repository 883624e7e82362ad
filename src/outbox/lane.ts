import { performance } from 'node:perf_hooks';
import type { DataSource } from 'typeorm';
import type { CompiledRelayOptions } from '../config/index.js';
import { ConcordatError, describeError, ErrorCode } from '../errors.js';
import type { OutgoingRecord, Transport } from '../transport/index.js';
import { backoffMs } from '../util/index.js';
import { isPoisonRecordError } from './poison.js';
import { RelayConnection } from './relay-connection.js';
import {
  faultPoint,
  linksOfRecords,
  MESSAGING_SYSTEM,
  recordSpanError,
  ROOT_CONTEXT,
  SpanKind,
  startSpan,
  TraceAttribute,
  type Logger,
  type Span,
} from '../observability/index.js';

/** An outbox row as a lane reads it. */
export interface ClaimedRow {
  seq: string;
  shard: number;
  topic: string;
  partition_key: string | null;
  headers: Record<string, string>;
  payload: Buffer | null;
  created_at: Date;
}

/** What a lane needs from its relay. */
export interface LaneHost {
  /** The relay's options. */
  readonly options: CompiledRelayOptions;
  /** The database whose outbox the relay drains. */
  readonly dataSource: DataSource;
  /** URL of the database, for the lane's own connection. */
  readonly databaseUrl: string;
  /** False once the relay began stopping: lanes finish their batch and end. */
  readonly isRunning: boolean;
  /** The owned shards lane `index` serves now. */
  shardsOfLane(index: number): number[];
  /** Where the lanes publish. */
  readonly transport: Transport;
  /** Topics the relay's lanes made sure exist (`transport.ensureTopics`), shared by its lanes: each topic is ensured once per relay. */
  readonly knownTopics: Set<string>;
  /** Counts a published batch of `rows` rows that started at `startedAt` (performance.now() ms). */
  batchDone(rows: number, startedAt: number): void;
  /** Rows the log refused for good were moved to `concordat.outbox_failed`. */
  rowsFailed(rows: ReadonlyArray<{ row: ClaimedRow; error: unknown }>): void;
  /** Counts a batch whose publish failed (its rows stay in the outbox for the next try). */
  batchFailed(): void;
}

/**
 * Deletes the rows of the batch just acknowledged (`$3`) and reads the next
 * batch, in one statement (one round trip per batch instead of two).
 *
 * The read takes up to `$2` rows, shard after shard in the order of `$1`,
 * each shard's rows in `seq` order: one index range scan of `(shard, seq)`
 * per shard, stopping as soon as the batch is full. The lane rotates `$1`
 * from batch to batch so that a deep shard cannot starve the others. The
 * read shares the DELETE's snapshot, which still shows the deleted rows, so
 * it leaves them out by `seq`.
 *
 * No row locks (see relay.ts for why that keeps per-key order).
 */
const DELETE_AND_READ = `
  WITH gone AS (DELETE FROM concordat.outbox WHERE seq = ANY($3::bigint[]))
  SELECT o.seq, o.shard, o.topic, o.partition_key, o.headers, o.payload, o.created_at
    FROM unnest($1::smallint[]) AS s(shard)
   CROSS JOIN LATERAL (
         SELECT seq, shard, topic, partition_key, headers, payload, created_at
           FROM concordat.outbox
          WHERE shard = s.shard AND seq <> ALL($3::bigint[])
          ORDER BY seq
          LIMIT $2) AS o
   LIMIT $2`;

const DELETE_BATCH = `DELETE FROM concordat.outbox WHERE seq = ANY($1::bigint[])`;

/**
 * How long an acknowledged batch's rows wait to be deleted together with the
 * next batch's read before they are deleted alone, in ms. Deleting them at
 * once would cost a statement and a commit right when the consumers of the
 * batch just published start their transactions; a row left a little longer
 * is at worst published again after a crash (a duplicate, which inboxes
 * absorb).
 */
const DELETE_LINGER_MS = 50;

/** Moves rows the log refused for good out of the outbox, with the log's error. */
const MOVE_FAILED = `
  WITH failed AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS f(seq, error)),
       moved AS (DELETE FROM concordat.outbox o USING failed f WHERE o.seq = f.seq RETURNING o.*, f.error)
  INSERT INTO concordat.outbox_failed (seq, message_id, topic, partition_key, shard, headers, payload, created_at, error)
  SELECT seq, message_id, topic, partition_key, shard, headers, payload, created_at, error FROM moved
  ON CONFLICT (seq) DO NOTHING`;

/** A batch published and acknowledged, whose rows are still to be deleted. */
interface Acknowledged {
  seqs: string[];
}

/**
 * One lane of a relay: the owned shards `s` with `s % lanes === index`.
 * Loop: read a batch (bounded by rows and bytes) from the shards that were
 * woken (or all, after a poll), turn its rows into transport records and
 * publish them, wait for the durable acknowledgement (at most
 * `publishTimeoutMs`); the next statement deletes its rows and reads the
 * next batch. One batch in flight at a time. The relay (`relay.ts`) owns
 * the shards, starts the lanes and wakes them; it counts what they report.
 */
export class RelayLane {
  /** Shards to look at next: those woken since the last read, or all. */
  private dirty: Set<number> | 'all' = 'all';
  private wakeUp: (() => void) | undefined;
  private pendingWake = false;
  private loop: Promise<void> | undefined;
  private inFlight: Promise<void> = Promise.resolve();
  private rotation = 0;
  private stopping = false;
  /** The batch acknowledged by the log and not yet deleted. */
  private acknowledged: Acknowledged | undefined;
  /** The lane's own connection, with asynchronous commit (see `relay-connection.ts`). */
  private readonly connection: RelayConnection;

  constructor(
    readonly index: number,
    private readonly host: LaneHost,
    private readonly logger: Logger,
  ) {
    this.connection = new RelayConnection(host);
  }

  /** Starts the lane's publish loop in the background (failures are handled inside it); {@link stop} ends it. */
  start(): void {
    this.stopping = false;
    this.loop = this.run();
  }

  /** Lets the batch in flight finish and deletes its rows, then ends the loop. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeUp?.();
    await this.loop;
    const acknowledged = this.acknowledged;
    try {
      if (acknowledged === undefined) return;
      await this.host.dataSource.query(DELETE_BATCH, [acknowledged.seqs]);
      this.acknowledged = undefined;
    } catch (error) {
      this.logger.warn({ err: describeError(error), lane: this.index }, 'could not delete published outbox rows at stop; they will be published again');
    } finally {
      await this.connection.close();
    }
  }

  /** Resolves when the batch in flight (if any) is done. */
  settle(): Promise<void> {
    return this.inFlight;
  }

  /** New rows in `shards` (all of this lane's shards when absent). */
  wake(shards?: readonly number[]): void {
    if (shards === undefined) this.dirty = 'all';
    else if (this.dirty !== 'all') for (const shard of shards) this.dirty.add(shard);
    if (this.wakeUp !== undefined) this.wakeUp();
    else this.pendingWake = true;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.host.isRunning && !this.stopping) {
      let target = this.takeTarget();
      if (target.length === 0 && this.acknowledged === undefined) {
        await this.sleep(this.host.options.pollIntervalMs);
        continue;
      }
      if (target.length === 0) {
        // Only rows to delete: give the next batch a moment to take them along.
        await this.sleep(DELETE_LINGER_MS, false);
        if (this.stopping || !this.host.isRunning) break;
        target = this.takeTarget();
      }
      try {
        const running = this.cycle(target);
        this.inFlight = running.then(
          () => undefined,
          () => undefined,
        );
        await running;
        failures = 0;
      } catch (error) {
        failures++;
        this.host.batchFailed();
        this.markDirty(target);
        const options = this.host.options;
        const delayMs = backoffMs({ firstMs: options.retryBackoffMs, maxMs: options.retryBackoffMaxMs }, failures);
        this.logger.warn(
          { err: describeError(error), lane: this.index, failures, delayMs },
          'outbox batch failed; its rows stay in the outbox and will be published again',
        );
        await this.sleep(delayMs);
      }
    }
  }

  /**
   * Deletes the acknowledged batch and reads the next one from `shards`;
   * publishes it. Leaves the new batch acknowledged (its rows are deleted by
   * the next cycle, or at stop).
   */
  private async cycle(shards: number[]): Promise<void> {
    const options = this.host.options;
    const startedAt = performance.now();
    const acknowledged = this.acknowledged;
    const rotated = rotate(shards, this.rotation++);
    // Prepared: parsing and planning this statement cost PostgreSQL more than running it.
    const { rows: read } = await this.connection.query<ClaimedRow>('concordat_relay_delete_and_read', DELETE_AND_READ, [
      rotated,
      options.batchRowsMax,
      acknowledged?.seqs ?? [],
    ]);
    this.acknowledged = undefined;
    if (read.length === 0) return;
    const rows = withinBytes(read, options.batchBytesMax);
    // Counted once the log acknowledged them (their delete comes with the next read): a consumer may already have handled them.
    this.host.batchDone(await this.publishIsolatingPoison(rows), startedAt);
    await faultPoint('relay.after-publish');
    this.acknowledged = { seqs: rows.map((row) => row.seq) };
    // A full batch means more rows wait in these shards: read them again at once.
    if (read.length === options.batchRowsMax || rows.length < read.length) this.markDirty(shards);
  }

  /**
   * Publishes `rows`; when the log refuses the batch for good (a record over
   * the topic's size limit, an invalid topic name: retrying can never
   * succeed), finds the rows at fault by halving the batch, in order, and
   * moves them to `concordat.outbox_failed`, so that they do not hold back
   * every key of this lane forever. The rows around them are published as
   * usual. A retriable failure propagates (the whole batch is retried).
   * @returns how many rows the log acknowledged
   */
  private async publishIsolatingPoison(rows: ClaimedRow[]): Promise<number> {
    try {
      await this.publish(rows);
      return rows.length;
    } catch (error) {
      if (!isPoisonRecordError(error)) throw error;
    }
    const failed: Array<{ row: ClaimedRow; error: unknown }> = [];
    await this.bisect(rows, failed);
    await this.host.dataSource.query(MOVE_FAILED, [failed.map((f) => f.row.seq), failed.map((f) => describeError(f.error).slice(0, 4096))]);
    this.host.rowsFailed(failed);
    return rows.length - failed.length;
  }

  private async bisect(rows: ClaimedRow[], failed: Array<{ row: ClaimedRow; error: unknown }>): Promise<void> {
    try {
      await this.publish(rows);
    } catch (error) {
      if (!isPoisonRecordError(error)) throw error;
      if (rows.length === 1) {
        failed.push({ row: rows[0]!, error });
        return;
      }
      const half = Math.ceil(rows.length / 2);
      await this.bisect(rows.slice(0, half), failed);
      await this.bisect(rows.slice(half), failed);
    }
  }

  /**
   * Publishes rows as transport records, in one `send` span, and waits for
   * the durable acknowledgement, at most `publishTimeoutMs`.
   * @throws ConcordatError PUBLISH_FAILED (retriable) on timeout; whatever the transport threw
   */
  private async publish(rows: readonly ClaimedRow[]): Promise<void> {
    const span = sendSpan(rows);
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.ensureTopics(rows);
      const { publishTimeoutMs } = this.host.options;
      const timeout = new Promise<never>((_, reject) => {
        // The message is built only when the timeout fires: this runs for every batch.
        timer = setTimeout(() => {
          const message = `the log did not acknowledge ${rows.length} outbox row(s) within relay.publishTimeoutMs (${publishTimeoutMs} ms)`;
          reject(new ConcordatError(message, { code: ErrorCode.PUBLISH_FAILED }));
        }, publishTimeoutMs);
      });
      const publishing = this.host.transport.publish(rows.map(toRecord));
      publishing.catch(() => undefined); // a late rejection after the timeout is already accounted for
      await Promise.race([publishing, timeout]);
    } catch (error) {
      recordSpanError(span, error);
      throw error;
    } finally {
      clearTimeout(timer);
      span.end();
    }
  }

  private async ensureTopics(rows: readonly ClaimedRow[]): Promise<void> {
    const known = this.host.knownTopics;
    const missing = [...new Set(rows.map((row) => row.topic))].filter((topic) => !known.has(topic));
    if (missing.length === 0) return;
    await this.host.transport.ensureTopics(missing.map((name) => ({ name, partitions: this.host.options.defaultPartitions })));
    for (const topic of missing) known.add(topic);
  }

  /** The shards to read now, and resets the dirty set. */
  private takeTarget(): number[] {
    const mine = this.host.shardsOfLane(this.index);
    const dirty = this.dirty;
    this.dirty = new Set();
    if (dirty === 'all') return mine;
    return mine.filter((shard) => dirty.has(shard));
  }

  private markDirty(shards: readonly number[]): void {
    if (this.dirty === 'all') return;
    for (const shard of shards) this.dirty.add(shard);
  }

  /** Waits for a wake-up, `stop()`, or `timeoutMs`; a timeout of a `poll` makes every shard dirty (the fallback poll). */
  private sleep(timeoutMs: number, poll = true): Promise<void> {
    if (this.pendingWake || this.stopping || !this.host.isRunning) {
      this.pendingWake = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (poll) this.dirty = 'all';
        done();
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        this.pendingWake = false;
        resolve();
      };
      this.wakeUp = done;
    });
  }
}

/** The longest prefix of `rows` within `bytesMax` payload bytes (at least one row). */
export function withinBytes<T extends { payload: Buffer | null }>(rows: T[], bytesMax: number): T[] {
  let bytes = 0;
  for (let i = 0; i < rows.length; i++) {
    bytes += rows[i]!.payload?.length ?? 0;
    if (bytes > bytesMax && i > 0) return rows.slice(0, i);
  }
  return rows;
}

function rotate<T>(items: readonly T[], by: number): T[] {
  if (items.length === 0) return [];
  const start = by % items.length;
  return [...items.slice(start), ...items.slice(0, start)];
}

/**
 * The `send` span of a batch (OpenTelemetry messaging operation type `send`,
 * kind CLIENT because its messages have creation contexts of their own):
 * a root, linked to the `publish` span of each record (its `ce_traceparent`).
 * Named after the topic when the batch has one, `send` otherwise.
 */
function sendSpan(rows: readonly ClaimedRow[]): Span {
  const topic = rows[0]!.topic;
  const oneTopic = rows.every((row) => row.topic === topic);
  const span = startSpan(oneTopic ? `send ${topic}` : 'send', SpanKind.CLIENT, ROOT_CONTEXT, {
    [TraceAttribute.SYSTEM]: MESSAGING_SYSTEM,
    [TraceAttribute.OPERATION_NAME]: 'send',
    [TraceAttribute.OPERATION_TYPE]: 'send',
    [TraceAttribute.BATCH_COUNT]: rows.length,
    ...(oneTopic && { [TraceAttribute.DESTINATION]: topic }),
  });
  // Links only for a recording span: without an SDK the headers are not even looked at.
  if (span.isRecording()) span.addLinks(linksOfRecords(rows.map((row) => row.headers)));
  return span;
}

function toRecord(row: ClaimedRow): OutgoingRecord {
  return { topic: row.topic, key: row.partition_key, value: row.payload, headers: row.headers, timestampMs: row.created_at.getTime() };
}
