/** One record to publish. CloudEvents travel in Kafka binary mode: `ce_*` headers. */
export interface OutgoingRecord {
  topic: string;
  /** Partition key; `null` spreads records over partitions. */
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string | Buffer>;
  /** Record timestamp, epoch ms. @default now */
  timestampMs?: number;
}

/** Where a published record landed. */
export interface PublishAck {
  topic: string;
  partition: number;
  /** Offset of the record in its partition (an int64 in Kafka; a safe integer here). */
  offset: number;
}

/** One delivered record. */
export interface Delivery {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  /** Header values by key; when a key repeats, the last value wins. */
  headers: Record<string, Buffer>;
  timestampMs: number;
}

/** Called once per record; the offset is committed after it resolves. */
export type DeliveryHandler = (delivery: Delivery) => Promise<void>;

/**
 * Called with consecutive records of one partition, in offset order (at
 * least one); the offsets of all of them are committed after it resolves.
 */
export type DeliveryBatchHandler = (deliveries: readonly Delivery[]) => Promise<void>;

// Bounds of SubscribeOptions.batchRecordsMax and ConcurrencyOptions.perPartition, with the
// validation of both (config/subscribe-options.ts).
export { BATCH_RECORDS, PER_PARTITION_CONCURRENCY } from '../config/index.js';

/**
 * How many calls of the handler one partition may have in flight at once,
 * for records of different keys (Confluent parallel consumer's key
 * ordering; see `key-scheduler.ts`).
 */
export interface ConcurrencyOptions {
  /**
   * Most calls of `handler` (or `batchHandler`) in flight at once for one
   * partition: a number for every topic of the subscription, or one per
   * topic (topics not listed: 1). Records of one key are handed over one
   * call after another, in offset order, never in two calls at once;
   * records without a key are each a key of their own (no order among
   * them). The offset committed is the lowest one not handled yet, so a
   * restart delivers again what was handled above it. 1 is one call at a
   * time in offset order, whatever the keys. Range 1..256. @default 1
   */
  perPartition?: number | Readonly<Record<string, number>>;
}

/** Where a consumer group with no committed offset (or one below the log start) starts: Kafka's `auto.offset.reset`. */
export const OffsetReset = { EARLIEST: 'earliest', LATEST: 'latest' } as const;
/** One of the {@link OffsetReset} values. */
export type OffsetReset = (typeof OffsetReset)[keyof typeof OffsetReset];

/**
 * What to consume and how. Give exactly one of `handler` (one record at a
 * time) and `batchHandler` (what one read returned, at most
 * `batchRecordsMax` records at a time); anything else is refused with
 * CONFIG_INVALID.
 */
export interface SubscribeOptions {
  /** Consumer group: members of one group share the topic's partitions. */
  groupId: string;
  topics: string[];
  /** Called for each record, one at a time per partition. */
  handler?: DeliveryHandler;
  /**
   * Called with the records of one partition that one read returned (never
   * waiting for more), in offset order, up to `batchRecordsMax` at a time.
   * Their offsets are committed after it resolves; when it rejects, the
   * same records are delivered again from the first, after a backoff.
   */
  batchHandler?: DeliveryBatchHandler;
  /** Most records in one call of `batchHandler`. Range 1..10000. @default 64 */
  batchRecordsMax?: number;
  /** Records of different keys of one partition handled at once. @default { perPartition: 1 } */
  concurrency?: ConcurrencyOptions;
  /** Where a group with no committed offset starts. @default 'earliest' */
  offsetReset?: OffsetReset;
  /** Called when the handler rejects, before the record is retried; for a batch, with its first record. */
  onHandlerError?: (error: unknown, delivery: Delivery) => void;
  /**
   * Called when the consumer itself failed (not a handler) and the transport
   * will restart it after `retryInMs`; also logged at error level. A report
   * with `stalled` means the same failure keeps coming back without
   * progress: consumption of that partition (or subscription) is stuck until
   * someone acts. Must not throw (what it throws is logged and ignored).
   */
  onConsumerFailure?: (event: ConsumerFailureEvent) => void;
}

/**
 * Consecutive failures without progress after which a consumer failure is
 * reported `stalled`.
 */
export const CONSUMER_STALLED_FAILURES = 5;

/** A consumer failure the transport recovers from by restarting, after a backoff. */
export interface ConsumerFailureEvent {
  groupId: string;
  /**
   * The partition whose worker failed (embedded transport); absent when the
   * whole consumer failed: the kafkajs consumer, or the embedded group
   * member (joining, syncing or heartbeating; its workers are stopped and
   * it rejoins).
   */
  topic?: string;
  partition?: number;
  /** The partition's position when it failed; delivery restarts from its committed offset. Absent for a whole consumer. */
  offset?: number;
  /**
   * Consecutive failures, this one included (1 for the first): of the
   * partition at the same offset (embedded worker), of the group member
   * without a successful heartbeat in between (embedded member), or of the
   * consumer without a handled record in between (kafkajs).
   */
  failures: number;
  /**
   * `failures >= CONSUMER_STALLED_FAILURES`; or, for the embedded group
   * member, a refusal of the coordinator that cannot heal by itself (a
   * configuration mistake such as INVALID_SESSION_TIMEOUT), from the first
   * report.
   */
  stalled: boolean;
  /** Wait before the restart, in ms. */
  retryInMs: number;
  error: unknown;
}

/** A running consumer-group member; close it to leave the group. */
export interface Subscription {
  readonly groupId: string;
  /** Leaves the group after the in-flight handlers finish and their offsets are committed. */
  close(): Promise<void>;
}

/** A topic to create: its name (Kafka's rule, 1..249 of `[a-zA-Z0-9._-]`) and partition count (≥ 1, fixed once created). */
export interface TopicSpec {
  name: string;
  partitions: number;
}

/** How far a consumer group trails one partition (Kafka's consumer lag), for the `concordat_consumer_lag` gauge. */
export interface ConsumerLag {
  topic: string;
  partition: number;
  /** The group's committed offset, -1 when it committed none. */
  committedOffset: number;
  /** The partition's high watermark: the offset the next record appended gets. */
  highWatermark: number;
  /** Records not consumed yet: highWatermark − committedOffset (from the log start when nothing is committed or it fell below it). */
  lag: number;
}

/**
 * The Transport seam: how Concordat moves records between services.
 *
 * Two strategies implement it and pass one contract suite
 * (`test/integration/transport/contract.ts`):
 * - `EmbeddedTransport` (`embedded/`): Concordat's own log engine, in process;
 * - `KafkaTransport` (`kafka/`): kafkajs, against `concordat broker` or any
 *   Kafka cluster.
 *
 * Semantics every implementation keeps:
 * - `publish` resolves only after every record is durably acknowledged by the
 *   log (fdatasync on the embedded log, acks = all on Kafka); a rejected
 *   promise means some records may or may not have been written, so the
 *   caller (the outbox relay) must retry and tolerate duplicates.
 * - Records with the same non-null key go to the same partition, in publish
 *   order (Kafka's default partitioner: murmur2(key) % partitions).
 * - Delivery is at-least-once: a record's offset is committed only after its
 *   handler's promise resolved. A handler that rejects is retried on the same
 *   record, after a backoff, without skipping it and without delivering later
 *   records of that partition first.
 * - Records of one partition are handled one at a time, in offset order;
 *   different partitions may be handled concurrently. With
 *   `concurrency.perPartition` N > 1 for a topic, records of one partition
 *   with different keys may be handled concurrently, up to N calls at once,
 *   while records of one key still go one after another in offset order,
 *   and the committed offset is the lowest offset not handled yet (see
 *   `key-scheduler.ts`).
 * - Batch delivery (`batchHandler`): the records of one partition that one
 *   read (fetch) returned are handed over together, in offset order, at most
 *   `batchRecordsMax` at a time. The transport never waits for more records
 *   to fill a batch, so a lone record goes at once. A batch's offsets are
 *   committed only after its promise resolved; a batch that rejects is
 *   delivered again from its first record, after a backoff, before any later
 *   record of its partition. A batch is all or nothing for the offsets: a
 *   handler that did part of a batch before rejecting gets those records
 *   again.
 *
 * Concurrency (one event loop; calls interleave at every await): a
 * transport's methods may be called while others are pending. Records of
 * one `publish` call keep their order within a partition, and both
 * transports write overlapping calls in call order; but a call that fails
 * is retried after calls that succeeded meanwhile, so await one publish
 * before the next when the order of their records must survive a failure.
 * `close` may overlap anything and waits for the subscriptions' handlers in
 * flight; `connect`, `ensureTopics`, `publish` and `subscribe` after it
 * fail with TRANSPORT_CLOSED (`consumerLag` answers []).
 */
export interface Transport {
  /** Which strategy this is: Concordat's own log in process, or kafkajs against brokers. */
  readonly kind: 'embedded' | 'kafka';
  /** Opens the log or the connection. Idempotent. */
  connect(): Promise<void>;
  /** Creates the topics that do not exist yet; an existing topic is left as it is. */
  ensureTopics(topics: TopicSpec[]): Promise<void>;
  /** Publishes records; resolves with one ack per record, in input order, after a durable acknowledgement. */
  publish(records: OutgoingRecord[]): Promise<PublishAck[]>;
  /**
   * Joins `options.groupId` and starts delivering to the handler; resolves once the member has its first assignment.
   * @throws ConcordatError CONFIG_INVALID (the handler options), UNKNOWN_TOPIC_OR_PARTITION (a topic does not exist), TRANSPORT_CLOSED
   */
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /**
   * How long the log keeps a topic's records, in ms; `Infinity` when it keeps
   * them forever. The app checks the inbox's dedup window against it.
   * Optional: without it the app cannot check and uses a default window.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION
   */
  retentionMs?(topic: string): Promise<number>;
  /**
   * The lag of `groupId` on every partition of `topics` (topics that do not
   * exist are left out). Optional: without it the app exports no lag.
   * @returns [] before `connect` and after `close`.
   */
  consumerLag?(groupId: string, topics: readonly string[]): Promise<ConsumerLag[]>;
  /**
   * Binds the storage this transport owns to the database whose outbox and
   * inbox it serves, identified by `databaseId` (`concordat.database_identity`):
   * recorded on first use, refused when the storage was written for another
   * database (its records would be delivered into this one). Optional: a
   * transport whose storage is shared (Kafka, `concordat broker`) has none.
   * Call after `connect`.
   * @throws ConcordatError LOG_DATABASE_MISMATCH
   */
  pairWithDatabase?(databaseId: string): Promise<void>;
  /** Closes subscriptions, then the log or connection. Idempotent. */
  close(): Promise<void>;
}
