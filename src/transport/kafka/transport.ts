/*
 * The kafkajs transport's producer side and its admin (topics, retention, lag); the subscription is in subscription.ts,
 * kafkajs error translation in errors.ts. One concept, over 400 lines with the option mapping onto kafkajs.
 */
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import {
  CompressionTypes,
  Kafka,
  logLevel,
  type Admin,
  type ConfigResourceTypes,
  type ICustomPartitioner,
  type KafkaConfig,
  type LogEntry,
  type Message,
  type Producer,
  type RecordMetadata,
} from 'kafkajs';
import { compileKafkaTransportOptions, type CompiledKafkaTransportOptions, type KafkaTransportOptions } from '../../config/index.js';
import { ConcordatError, ErrorCode, describeError, kafkaErrorOf } from '../../errors.js';
import { consumerLag, partitionForKey, RoundRobinPartitioner } from '../../log/index.js';
import { createLogger, type Logger } from '../../observability/index.js';
import {
  type ConsumerLag,
  type OutgoingRecord,
  type PublishAck,
  type SubscribeOptions,
  type Subscription,
  type TopicSpec,
  type Transport,
} from '../transport.js';
import { chunkDelivery } from '../delivery.js';
import { requireTopics, startSubscription } from '../subscribe.js';
import { fromKafkajs, publishFailed, RETENTION_MS, retentionUnknown, topicErrors, transportClosed } from './errors.js';
import { KafkaSubscription } from './subscription.js';

/**
 * KafkaTransport: the Transport over kafkajs 2.2.4, against
 * `concordat broker` or any Kafka cluster.
 *
 * Publish: one idempotent producer (InitProducerId, producer ID + sequence
 * numbers, acks = all, one request in flight per broker as kafkajs requires
 * for idempotence). Concordat picks each record's partition itself — Kafka's
 * default partitioner, murmur2(key) & 0x7fffffff % partitions, round-robin
 * for null keys — and remembers the choice per message, so kafkajs's retries
 * route a record to the same partition and the acks can be computed: the
 * records of one partition go in one batch, in input order, so the i-th of
 * them landed at baseOffset + i.
 *
 * One publish at a time. kafkajs rolls a partition's sequence number back
 * when a produce request fails; if that request was in fact written (its
 * answer lost), the next *different* batch would reuse the sequence and the
 * broker would acknowledge it as a duplicate without writing it — a silent
 * loss. So after any failed publish the producer is retired and the next
 * publish starts a new one (a new producer ID, sequences from 0): a failure
 * may then duplicate (the inbox absorbs it), never lose. One at a time keeps
 * a second publish from starting on the retired producer's state; callers
 * that arrive meanwhile are sent together in the next publish (like the
 * log's group commit), and a publish larger than `producer.batchBytesMax` is
 * sent as consecutive chunks (Kafka refuses a batch above the broker's
 * `message.max.bytes`, 1 MiB by default).
 *
 * Subscribe: one kafkajs consumer per subscription (consumer group), with
 * `eachBatch`, `eachBatchAutoResolve: false` and kafkajs's auto-commit of
 * *resolved* offsets only:
 * - a record's offset is resolved only after its handler resolved, so a
 *   commit never passes an unhandled record;
 * - kafkajs commits the resolved offsets at the end of every batch, before a
 *   rejoin when a heartbeat reports a rebalance (commit on revoke; the
 *   coordinator accepts commits of the current generation while preparing a
 *   rebalance), and when the consumer stops;
 * - a handler that rejects: the partition is paused and the batch ends (so
 *   the records handled before it are committed), and after the backoff the
 *   partition resumes from the rejected record — other partitions keep
 *   flowing meanwhile;
 * - records of one partition are handled one at a time, in offset order, or
 *   with a `batchHandler` in chunks of up to `batchRecordsMax` cut from
 *   kafkajs's batch (what one fetch returned), a chunk's last offset
 *   resolved after it resolved; up to `partitionsConcurrently` partitions
 *   at once. kafkajs fetches again
 *   only when every batch of the previous fetch is done, so one slow handler
 *   delays the next fetch of the other partitions (not their current batch);
 * - while a handler runs, heartbeats continue; a rebalance noticed then ends
 *   the batch right after that handler, and kafkajs commits and rejoins;
 * - a consumer that crashes with an error kafkajs will not restart on (it
 *   restarts on retriable ones itself) is replaced by a new one after a
 *   backoff, for as long as the subscription is open; each such crash is
 *   logged at error and reported to `onConsumerFailure` (`stalled` after
 *   CONSUMER_STALLED_FAILURES crashes with no record handled in between),
 *   as the embedded transport reports a failed partition worker. Before
 *   the first assignment the same happens up to CONSUMER_STALLED_FAILURES
 *   times in a row, then `subscribe` fails with the last error (a
 *   coordinator may refuse a member mid-rebalance with an error kafkajs
 *   does not retry, as librdkafka's mock cluster does under load).
 *
 * Concurrency (one event loop; calls interleave at every await): every
 * method may be called while others are pending. Overlapping `publish`
 * calls queue and are sent in call order, several per round; `connect`
 * calls share one connection; `ensureTopics`, `retentionMs` and
 * `consumerLag` use the admin client beside publishes and subscriptions.
 * `close` may overlap anything: it marks the transport closed, waits for
 * the subscriptions to stop (handlers in flight finish, offsets are
 * committed), lets the round in flight end (queued publishes fail with
 * TRANSPORT_CLOSED) and disconnects.
 */
export class KafkaTransport implements Transport {
  readonly kind = 'kafka' as const;
  private readonly options: CompiledKafkaTransportOptions;
  private readonly logger: Logger;
  private kafka: Kafka | null = null;
  private admin: Admin | null = null;
  private connecting: Promise<void> | null = null;
  private producer: Producer | null = null;
  /** Publishes waiting for the one in flight to finish. */
  private readonly waiting: PendingPublish[] = [];
  /** The publish in flight. */
  private sending: Promise<void> | null = null;
  private readonly subscriptions = new Set<KafkaSubscription>();
  /** The partition Concordat chose for each message handed to kafkajs. */
  private readonly chosenPartition = new WeakMap<Message, number>();
  private readonly roundRobin = new RoundRobinPartitioner();
  private closed = false;

  /**
   * Checks and compiles the options; connects nothing (see {@link connect}).
   * @param parentLogger parent of the transport's logger (an app's root). @default Concordat's own
   * @throws ConcordatError CONFIG_INVALID naming the option
   */
  constructor(options: KafkaTransportOptions, parentLogger?: Logger) {
    this.options = compileKafkaTransportOptions(options);
    this.logger = createLogger('transport.kafka', { brokers: this.options.brokers }, parentLogger);
  }

  /** The bootstrap brokers in use. */
  get brokers(): readonly string[] {
    return this.options.brokers;
  }

  /** Connects the admin client (the producer connects at the first publish). Idempotent. */
  async connect(): Promise<void> {
    if (this.closed) throw transportClosed();
    this.connecting ??= this.open().catch((error: unknown) => {
      this.connecting = null;
      throw error;
    });
    await this.connecting;
  }

  private async open(): Promise<void> {
    const kafka = new Kafka(await this.clientConfig());
    const admin = kafka.admin();
    await admin.connect();
    this.kafka = kafka;
    this.admin = admin;
  }

  private async clientConfig(): Promise<KafkaConfig> {
    const options = this.options;
    const config: KafkaConfig = {
      clientId: options.clientId,
      brokers: options.brokers,
      connectionTimeout: options.connectionTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      retry: { retries: options.retries, initialRetryTime: RETRY_INITIAL_MS, maxRetryTime: RETRY_MAX_MS },
      logLevel: kafkajsLevel(this.logger),
      logCreator: () => (entry) => this.logKafkajs(entry),
    };
    if (options.tls !== false) config.ssl = await tlsConfig(options.tls);
    if (options.sasl !== undefined) config.sasl = { ...options.sasl } as KafkaConfig['sasl'];
    return config;
  }

  /**
   * Creates the topics that do not exist yet, with `replicationFactor`; an
   * existing topic (even one created concurrently by another process) is left
   * as it is.
   * @throws ConcordatError INVALID_PARTITIONS / INVALID_TOPIC_EXCEPTION / the broker's refusal, TRANSPORT_CLOSED
   */
  async ensureTopics(topics: TopicSpec[]): Promise<void> {
    await this.connect();
    const admin = this.admin!;
    const existing = new Set(await admin.listTopics());
    const wanted = new Map<string, TopicSpec>();
    for (const topic of topics) if (!existing.has(topic.name) && !wanted.has(topic.name)) wanted.set(topic.name, topic);
    if (wanted.size === 0) return;
    try {
      await admin.createTopics({
        topics: [...wanted.values()].map((t) => ({ topic: t.name, numPartitions: t.partitions, replicationFactor: this.options.replicationFactor })),
        waitForLeaders: true,
        timeout: this.options.requestTimeoutMs,
      });
    } catch (error) {
      const refusals = topicErrors(error).filter((e) => kafkaErrorOf(e) !== 'TOPIC_ALREADY_EXISTS');
      if (refusals.length === 0 && topicErrors(error).length > 0) return;
      const first = refusals[0];
      throw fromKafkajs(
        `cannot create topics ${[...wanted.keys()].join(', ')}: ${describeError(first ?? error)}`,
        kafkaErrorOf(first),
        ErrorCode.INVALID_CONFIG,
        error,
      );
    }
  }

  /**
   * Publishes with acks = all; resolves with one ack per record, in input
   * order, once every partition leader (and its in-sync replicas) has the
   * records.
   * @throws ConcordatError PUBLISH_FAILED (retriable unless the cause is a programmer
   *   error; some records may have been written), UNKNOWN_TOPIC_OR_PARTITION, TRANSPORT_CLOSED
   */
  async publish(records: OutgoingRecord[]): Promise<PublishAck[]> {
    await this.connect();
    if (records.length === 0) return [];
    return new Promise<PublishAck[]>((resolve, reject) => {
      this.waiting.push({ records, resolve, reject });
      this.drain();
    });
  }

  /**
   * Sends what is waiting as one publish, then the next: concurrent callers
   * (the relay's lanes) share produce requests and the broker's fsyncs, while
   * one publish at a time keeps the sequence numbers safe (class comment).
   * A failure fails every caller of that round; each retries its own records.
   */
  private drain(): void {
    if (this.sending !== null || this.waiting.length === 0) return;
    let calls = 1;
    let records = this.waiting[0]!.records.length;
    while (calls < this.waiting.length && records + this.waiting[calls]!.records.length <= ROUND_RECORDS_MAX) {
      records += this.waiting[calls]!.records.length;
      calls += 1;
    }
    const round = this.waiting.splice(0, calls);
    this.sending = this.sendAll(round.flatMap((call) => call.records)).then(
      (acks) => {
        let from = 0;
        for (const call of round) {
          call.resolve(acks.slice(from, from + call.records.length));
          from += call.records.length;
        }
      },
      (error: unknown) => {
        for (const call of round) call.reject(error);
      },
    );
    void this.sending.finally(() => {
      this.sending = null;
      this.drain();
    });
  }

  /** Sends the records in order, in consecutive chunks of at most `producer.batchBytesMax` (estimated). */
  private async sendAll(records: readonly OutgoingRecord[]): Promise<PublishAck[]> {
    const acks: PublishAck[] = [];
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < records.length; i++) {
      const size = estimateBytes(records[i]!);
      if (i > start && bytes + size > this.options.producer.batchBytesMax) {
        acks.push(...(await this.send(records.slice(start, i))));
        start = i;
        bytes = 0;
      }
      bytes += size;
    }
    acks.push(...(await this.send(records.slice(start))));
    return acks;
  }

  private async send(records: readonly OutgoingRecord[]): Promise<PublishAck[]> {
    if (this.closed) throw transportClosed();
    const messages = records.map(toMessage);
    const byTopic = new Map<string, Message[]>();
    records.forEach((record, i) => {
      const list = byTopic.get(record.topic) ?? [];
      list.push(messages[i]!);
      byTopic.set(record.topic, list);
    });
    let metadata: RecordMetadata[];
    try {
      const producer = await this.producerInUse();
      metadata = await producer.sendBatch({
        acks: -1,
        timeout: this.options.producer.ackTimeoutMs,
        compression: this.options.producer.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
        topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list })),
      });
    } catch (error) {
      await this.retireProducer();
      throw publishFailed(error);
    }
    return this.acksOf(records, messages, metadata);
  }

  /**
   * Offsets: the records of one partition were one batch, in input order, so
   * the i-th is at the base offset + i. A base offset of -1 is Kafka's
   * "unknown": `concordat broker` answers it when a topic's message-ID dedup
   * window dropped some of the records as repeats of records stored
   * elsewhere (only for a non-idempotent producer: idempotent batches are
   * never cut); they are acknowledged, at offsets the answer does not say,
   * so their acks carry offset -1.
   */
  private acksOf(records: readonly OutgoingRecord[], messages: readonly Message[], metadata: readonly RecordMetadata[]): PublishAck[] {
    const next = new Map<string, number>();
    for (const entry of metadata) next.set(`${entry.topicName}\u0000${entry.partition}`, Number(entry.baseOffset));
    return records.map((record, i) => {
      const partition = this.chosenPartition.get(messages[i]!);
      const key = `${record.topic}\u0000${partition}`;
      const offset = next.get(key);
      if (partition === undefined || offset === undefined || !Number.isSafeInteger(offset)) {
        throw new ConcordatError(`publish to ${record.topic} was acknowledged without an offset for partition ${partition}`, {
          code: ErrorCode.PUBLISH_FAILED,
        });
      }
      if (offset === -1) return { topic: record.topic, partition, offset };
      next.set(key, offset + 1);
      return { topic: record.topic, partition, offset };
    });
  }

  private async producerInUse(): Promise<Producer> {
    if (this.producer !== null) return this.producer;
    const producer = this.kafka!.producer({
      idempotent: this.options.producer.idempotent,
      // kafkajs's idempotence holds only with one request in flight per broker.
      maxInFlightRequests: this.options.producer.idempotent ? 1 : 5,
      allowAutoTopicCreation: false,
      createPartitioner: this.partitioner,
      retry: { retries: this.options.producer.retries, initialRetryTime: RETRY_INITIAL_MS, maxRetryTime: RETRY_MAX_MS },
    });
    await producer.connect();
    this.producer = producer;
    return producer;
  }

  /** After a failed publish: a new producer ID for the next one (see the class comment). */
  private async retireProducer(): Promise<void> {
    const producer = this.producer;
    this.producer = null;
    await producer?.disconnect().catch((error: unknown) => this.logger.debug({ err: describeError(error) }, 'disconnecting a retired producer failed'));
  }

  /** Kafka's default partitioner, remembering each message's partition. */
  private readonly partitioner: ICustomPartitioner =
    () =>
    ({ topic, partitionMetadata, message }) => {
      const chosen = this.chosenPartition.get(message);
      if (chosen !== undefined) return chosen;
      const count = partitionMetadata.length;
      const key = message.key;
      const partition =
        key === null || key === undefined
          ? this.roundRobin.partition(topic, count)
          : partitionForKey(typeof key === 'string' ? Buffer.from(key, 'utf8') : key, count);
      this.chosenPartition.set(message, partition);
      return partition;
    };

  /**
   * Joins `groupId` and starts delivering; resolves once the group assigned
   * this member its partitions.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION (a topic does not exist), TRANSPORT_CLOSED,
   *   or what kafkajs refused (an inconsistent group protocol, authorization)
   */
  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const delivery = chunkDelivery(options);
    await this.connect();
    const existing = new Set(await this.admin!.listTopics());
    requireTopics(options.topics, (topic) => existing.has(topic));
    const subscription = new KafkaSubscription(this.kafka!, options, delivery, this.options.consumer, this.logger, () =>
      this.subscriptions.delete(subscription),
    );
    return startSubscription(this.subscriptions, subscription);
  }

  /**
   * How long the brokers keep `topic`'s records, in ms: its `retention.ms`
   * as DescribeConfigs reports it (the topic's own value or the broker
   * default that applies to it); `Infinity` for -1 (kept forever). The app
   * checks the inbox's dedup window against it. Retention by size
   * (`retention.bytes`) is not part of the answer: it may delete earlier,
   * never later.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION; UNSUPPORTED_VERSION when the
   *   brokers do not serve DescribeConfigs; CONFIG_INVALID when the retention cannot
   *   be established otherwise — no usable value came back, or kafkajs failed (brokers
   *   unreachable, TOPIC_AUTHORIZATION_FAILED: the principal needs DescribeConfigs on
   *   the topic; retriable when kafkajs's error is), or the code of the Kafka error when
   *   Concordat has one (retriable as the error table says); TRANSPORT_CLOSED
   */
  async retentionMs(topic: string): Promise<number> {
    await this.connect();
    let value: string | null | undefined;
    try {
      const described = await this.admin!.describeConfigs({
        resources: [{ type: TOPIC_RESOURCE, name: topic, configNames: [RETENTION_MS] }],
        includeSynonyms: false,
      });
      value = described.resources.find((r) => r.resourceName === topic)?.configEntries.find((e) => e.configName === RETENTION_MS)?.configValue;
    } catch (error) {
      throw retentionUnknown(topic, error);
    }
    if (value === '-1') return Infinity;
    if (value === undefined || value === null || !/^\d+$/.test(value)) {
      throw new ConcordatError(`the brokers reported no usable ${RETENTION_MS} for topic '${topic}' (got ${JSON.stringify(value ?? null)})`, {
        code: ErrorCode.CONFIG_INVALID,
        context: { topic, value },
      });
    }
    return Number(value);
  }

  /**
   * The lag of `groupId` on the partitions of `topics`, from the brokers:
   * the group's committed offsets (one OffsetFetch) and each topic's high
   * watermarks (one ListOffsets per topic), through the admin client.
   * Topics the brokers do not know are left out. Rejects with kafkajs's
   * error when the brokers cannot be reached.
   */
  async consumerLag(groupId: string, topics: readonly string[]): Promise<ConsumerLag[]> {
    const admin = this.admin;
    if (this.closed || admin === null) return [];
    const known = new Set(await admin.listTopics());
    const present = topics.filter((topic) => known.has(topic));
    if (present.length === 0) return [];
    const committed = await admin.fetchOffsets({ groupId, topics: present });
    const lags: ConsumerLag[] = [];
    for (const { topic, partitions } of committed) {
      const ends = new Map((await admin.fetchTopicOffsets(topic)).map((end) => [end.partition, end]));
      for (const { partition, offset } of partitions) {
        const end = ends.get(partition);
        if (end === undefined) continue;
        const committedOffset = Number(offset);
        const highWatermark = Number(end.high);
        lags.push({ topic, partition, committedOffset, highWatermark, lag: consumerLag(committedOffset, { logStartOffset: Number(end.low), highWatermark }) });
      }
    }
    return lags.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  }

  /** Closes the subscriptions (their handlers finish, offsets are committed), waits for publishes, disconnects. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    // Publishes already accepted fail with TRANSPORT_CLOSED in send(); wait until none is in flight.
    while (this.sending !== null) await this.sending;
    await this.connecting?.catch(() => undefined);
    await this.retireProducer();
    await this.admin?.disconnect().catch(() => undefined);
    this.admin = null;
    this.kafka = null;
  }

  /** kafkajs's log lines into Concordat's logger; its INFO is chatty (every join, every connection), so it goes to debug. */
  private logKafkajs(entry: LogEntry): void {
    const { message, timestamp: _timestamp, ...extra } = entry.log;
    // We limit the idempotent producer's retries on purpose and retire it after a failure (see the class comment).
    if (message === 'Limiting retries for the idempotent producer may invalidate EoS guarantees') return;
    const fields = { kafkajs: entry.namespace, ...extra };
    switch (entry.level) {
      case logLevel.ERROR:
        this.logger.error(fields, message);
        break;
      case logLevel.WARN:
        this.logger.warn(fields, message);
        break;
      case logLevel.INFO:
        this.logger.debug(fields, message);
        break;
      default:
        this.logger.trace(fields, message);
    }
  }
}

interface PendingPublish {
  records: readonly OutgoingRecord[];
  resolve(acks: PublishAck[]): void;
  reject(error: unknown): void;
}

/** Estimated bytes of a record in a batch beyond its key, value and headers. */
const RECORD_OVERHEAD_BYTES = 24;

/** Most records of waiting publishes sent together in one round (a single larger publish still goes alone). */
const ROUND_RECORDS_MAX = 20_000;

function estimateBytes(record: OutgoingRecord): number {
  let bytes = RECORD_OVERHEAD_BYTES + Buffer.byteLength(record.key ?? '') + (record.value?.length ?? 0);
  for (const [key, value] of Object.entries(record.headers)) bytes += Buffer.byteLength(key) + Buffer.byteLength(value) + 10;
  return bytes;
}

/** kafkajs retry delays: the first, and the cap of the doubling (kafkajs's defaults are 300 ms and 30 s). */
const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 2000;

/** The kafkajs level whose lines our logger would print (kafkajs INFO maps to debug, DEBUG to trace). */
function kafkajsLevel(logger: Logger): logLevel {
  if (logger.isLevelEnabled('trace')) return logLevel.DEBUG;
  if (logger.isLevelEnabled('debug')) return logLevel.INFO;
  if (logger.isLevelEnabled('warn')) return logLevel.WARN;
  if (logger.isLevelEnabled('error')) return logLevel.ERROR;
  return logLevel.NOTHING;
}

function toMessage(record: OutgoingRecord): Message {
  return {
    key: record.key,
    value: record.value,
    headers: { ...record.headers },
    ...(record.timestampMs === undefined ? {} : { timestamp: String(record.timestampMs) }),
  };
}

async function tlsConfig(
  tls: true | { caFile?: string | undefined; certFile?: string | undefined; keyFile?: string | undefined; rejectUnauthorized: boolean },
): Promise<ConnectionOptions | boolean> {
  if (tls === true) return true;
  const read = (file: string | undefined) => (file === undefined ? undefined : readFile(file, 'utf8'));
  const [ca, cert, key] = await Promise.all([read(tls.caFile), read(tls.certFile), read(tls.keyFile)]);
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(ca === undefined ? {} : { ca: [ca] }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
  };
}

/**
 * Kafka's ConfigResource type of a topic. Not kafkajs's `ConfigResourceTypes`
 * value: Node's ESM loader cannot see that export of kafkajs's CommonJS index
 * (its export scan stops before it), so importing it fails outside vitest.
 */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;
