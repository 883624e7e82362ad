import { createRequire } from 'node:module';

/**
 * node-rdkafka (librdkafka built from the source the package bundles): the
 * second, non-kafkajs client of the broker and transport tests, and the host
 * of librdkafka's mock cluster.
 *
 * It is an optional dependency (its install script compiles C and C++, so a
 * machine without a compiler still completes `npm ci` without it). Hence it
 * is loaded with `require` when a test runs, and only the part these tests
 * use is typed here: a type import of the package would fail `tsc` on such
 * a machine. `tools.ts` skips (or, under CI, fails) the tests when it is
 * missing.
 *
 * Only node-rdkafka's asynchronous calls are used: a synchronous one that
 * waits for a broker (commitSync, queryWatermarkOffsets without callback)
 * would block the event loop of the process the broker under test runs in.
 */

/** A librdkafka error as node-rdkafka reports it: `code` is librdkafka's (negative: local, positive: Kafka's). */
export interface RdKafkaError extends Error {
  code: number;
  origin?: string;
}

/** A record header list as node-rdkafka takes and gives it: one single-key object per header, in order. */
export type RdHeaders = Array<Record<string, Buffer | string>>;

export interface RdMessage {
  topic: string;
  partition: number;
  offset: number;
  key?: Buffer | string | null;
  value: Buffer | null;
  headers?: RdHeaders;
  /** Epoch ms. */
  timestamp?: number;
}

export interface RdDeliveryReport {
  topic: string;
  partition: number;
  offset: number;
  opaque?: unknown;
}

export interface RdMetadata {
  orig_broker_id: number;
  brokers: Array<{ id: number; host: string; port: number }>;
  topics: Array<{ name: string; partitions: Array<{ id: number; leader: number; replicas: number[]; isrs: number[] }> }>;
}

export interface RdTopicPartitionOffset {
  topic: string;
  partition: number;
  offset: number;
}

/** librdkafka configuration properties (CONFIGURATION.md of librdkafka), plus node-rdkafka's callbacks. */
export type RdConfig = Record<string, string | number | boolean | ((...args: never[]) => void)>;

interface RdClient {
  connect(options: { timeout?: number; topic?: string; allTopics?: boolean }, cb: (err: RdKafkaError | null, metadata: RdMetadata) => void): this;
  disconnect(cb: (err?: unknown) => void): this;
  getMetadata(options: { timeout?: number; topic?: string; allTopics?: boolean }, cb: (err: RdKafkaError | null, metadata: RdMetadata) => void): void;
  isConnected(): boolean;
  on(event: string, listener: (...args: never[]) => void): this;
  removeListener(event: string, listener: (...args: never[]) => void): this;
}

export interface RdProducer extends RdClient {
  /** Queues one record; `partition` null or -1: librdkafka's partitioner. Throws when the local queue is full. */
  produce(
    topic: string,
    partition: number | null,
    value: Buffer | null,
    key?: Buffer | string | null,
    timestampMs?: number | null,
    opaque?: unknown,
    headers?: RdHeaders,
  ): unknown;
  flush(timeoutMs: number, cb: (err?: RdKafkaError | null) => void): this;
  setPollInterval(intervalMs: number): this;
  /** Serves queued events (delivery reports, errors) without waiting. @throws before the client's handle exists */
  poll(): this;
}

export interface RdConsumer extends RdClient {
  subscribe(topics: string[]): this;
  assign(assignments: Array<{ topic: string; partition: number; offset?: number }>): this;
  assignments(): Array<{ topic: string; partition: number }>;
  setDefaultConsumeTimeout(timeoutMs: number): void;
  /** Up to `count` messages, or fewer after the consume timeout. */
  consume(count: number, cb: (err: RdKafkaError | null, messages: RdMessage[]) => void): void;
  committed(
    partitions: Array<{ topic: string; partition: number }>,
    timeoutMs: number,
    cb: (err: RdKafkaError | null, offsets: RdTopicPartitionOffset[]) => void,
  ): this;
}

/** node-rdkafka's AdminClient: the admin calls it exposes (CreateTopics, DeleteTopics, CreatePartitions). */
export interface RdAdminClient {
  createTopic(
    topic: { topic: string; num_partitions: number; replication_factor: number; config?: Record<string, string> },
    timeoutMs: number,
    cb: (err?: RdKafkaError) => void,
  ): void;
  createPartitions(topic: string, totalPartitions: number, timeoutMs: number, cb: (err?: RdKafkaError) => void): void;
  disconnect(): void;
}

export interface RdKafka {
  AdminClient: { create(conf: RdConfig): RdAdminClient };
  Producer: new (conf: RdConfig, topicConf?: RdConfig) => RdProducer;
  KafkaConsumer: new (conf: RdConfig, topicConf?: RdConfig) => RdConsumer;
  /** Features librdkafka was built with: `gzip`, `snappy`, `lz4`, `zstd`, `ssl`, `sasl_scram`, … */
  features: string[];
  librdkafkaVersion: string;
}

/**
 * What the tests need librdkafka to have been built with (SCRAM and TLS depend on the machine's OpenSSL
 * headers). zstd, which needs libzstd's headers (not on a fresh Debian machine), is asked for by its own
 * test only ({@link rdKafkaHasZstd}), so that everything else runs without it.
 */
export const RDKAFKA_FEATURES = ['gzip', 'snappy', 'lz4', 'ssl', 'sasl_plain', 'sasl_scram'] as const;

let loaded: RdKafka | undefined;

/** node-rdkafka, loaded once. @throws when it is not installed or its native part does not load */
export function loadRdKafka(): RdKafka {
  loaded ??= createRequire(import.meta.url)('node-rdkafka') as RdKafka;
  return loaded;
}

/** Whether node-rdkafka loads and has every one of {@link RDKAFKA_FEATURES}. */
export function rdKafkaUsable(): boolean {
  try {
    const { features } = loadRdKafka();
    return RDKAFKA_FEATURES.every((feature) => features.includes(feature));
  } catch {
    return false;
  }
}

/** Whether node-rdkafka is usable ({@link rdKafkaUsable}) and was built with zstd. */
export function rdKafkaHasZstd(): boolean {
  try {
    return rdKafkaUsable() && loadRdKafka().features.includes('zstd');
  } catch {
    return false;
  }
}

/** Connects `client` (its first Metadata answered) and returns that metadata. */
export function connect(client: RdClient, timeoutMs = 20_000): Promise<RdMetadata> {
  return new Promise((resolve, reject) => {
    client.connect({ timeout: timeoutMs }, (err, metadata) => (err ? reject(err) : resolve(metadata)));
  });
}

/** Disconnects `client` if connected; never rejects (a test's cleanup). */
export function disconnect(client: RdClient | undefined): Promise<void> {
  if (client === undefined || !client.isConnected()) return Promise.resolve();
  return new Promise((resolve) => client.disconnect(() => resolve()));
}

/** Metadata for `topic` (which a producer's request auto-creates where the broker does that). */
export function metadata(client: RdClient, topic: string, timeoutMs = 10_000): Promise<RdMetadata> {
  return new Promise((resolve, reject) => {
    client.getMetadata({ topic, timeout: timeoutMs }, (err, data) => (err ? reject(err) : resolve(data)));
  });
}

export interface RdRecord {
  topic: string;
  /** @default librdkafka's partitioner */
  partition?: number;
  key?: string | null;
  value: string | null;
  headers?: Record<string, string>;
}

/**
 * Produces `records` with a producer created with `dr_cb: true` and returns
 * one delivery report per record, in the order given (each carries its
 * record's index as `opaque`). Rejects on the first failed delivery, on a
 * record reported twice, or after `timeoutMs`.
 */
export function produceAll(producer: RdProducer, records: readonly RdRecord[], timeoutMs = 30_000): Promise<RdDeliveryReport[]> {
  const reports: Array<RdDeliveryReport | undefined> = new Array(records.length);
  let delivered = 0;
  return new Promise<RdDeliveryReport[]>((resolve, reject) => {
    const done = (error?: Error): void => {
      clearTimeout(timer);
      producer.removeListener('delivery-report', onReport);
      producer.setPollInterval(0);
      if (error) reject(error);
      else resolve(reports as RdDeliveryReport[]);
    };
    const timer = setTimeout(() => done(new Error(`${delivered} of ${records.length} records reported delivered within ${timeoutMs} ms`)), timeoutMs);
    const onReport = (err: RdKafkaError | null, report: RdDeliveryReport): void => {
      if (err) return done(err);
      const index = report.opaque as number;
      if (reports[index] !== undefined)
        return done(new Error(`record ${index} reported delivered twice (offsets ${reports[index]!.offset} and ${report.offset})`));
      reports[index] = report;
      delivered += 1;
      if (delivered === records.length) done();
    };
    producer.on('delivery-report', onReport);
    producer.setPollInterval(10);
    records.forEach((r, index) => {
      const headers = Object.entries(r.headers ?? {}).map(([k, v]) => ({ [k]: v }));
      producer.produce(
        r.topic,
        r.partition ?? null,
        r.value === null ? null : Buffer.from(r.value),
        r.key ?? null,
        null,
        index,
        headers.length > 0 ? headers : undefined,
      );
    });
  });
}

/** One consumed message as a comparable line: `partition|offset|key|value|h1=v1,h2=v2` (∅ for null). */
export function messageLine(m: RdMessage): string {
  const headers = (m.headers ?? []).flatMap((h) => Object.entries(h).map(([k, v]) => `${k}=${v.toString()}`)).join(',');
  return `${m.partition}|${m.offset}|${m.key?.toString() ?? '∅'}|${m.value?.toString() ?? '∅'}|${headers}`;
}

/**
 * Consumes until `count` messages arrived (more that come in the same call
 * are kept) or `timeoutMs` passed. @throws after `timeoutMs`, naming how many arrived
 */
export async function consumeCount(consumer: RdConsumer, count: number, timeoutMs = 30_000): Promise<RdMessage[]> {
  const messages: RdMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  consumer.setDefaultConsumeTimeout(100);
  while (messages.length < count) {
    if (Date.now() > deadline) throw new Error(`${messages.length} of ${count} messages within ${timeoutMs} ms`);
    const batch = await new Promise<RdMessage[]>((resolve, reject) =>
      consumer.consume(count - messages.length, (err, got) => (err ? reject(err) : resolve(got))),
    );
    messages.push(...batch);
  }
  return messages;
}
