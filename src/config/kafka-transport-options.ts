import { z } from 'zod';
import { ConcordatError, ErrorCode } from '../errors.js';
import { compileOptions } from './compile.js';

/** SASL mechanisms the kafkajs transport can use (kafkajs 2.2.4 built-ins, AWS and OAuth left out). */
export const KafkaSaslMechanism = { PLAIN: 'plain', SCRAM_SHA_256: 'scram-sha-256', SCRAM_SHA_512: 'scram-sha-512' } as const;
/** One of the {@link KafkaSaslMechanism} values. */
export type KafkaSaslMechanism = (typeof KafkaSaslMechanism)[keyof typeof KafkaSaslMechanism];

/** SASL authentication (username and password) against the brokers. */
export interface KafkaSaslOptions {
  mechanism: KafkaSaslMechanism;
  username: string;
  password: string;
}

/** TLS to the brokers; PEM files are read when the transport connects. */
export interface KafkaTlsOptions {
  /** CA bundle to trust instead of Node's default roots. */
  caFile?: string;
  /** Client certificate chain, for brokers that require client authentication (with `keyFile`). */
  certFile?: string;
  /** Private key of the client certificate. */
  keyFile?: string;
  /** Reject a broker certificate that does not verify. @default true */
  rejectUnauthorized?: boolean;
}

/** Producer settings of the kafkajs transport. */
export interface KafkaProducerOptions {
  /**
   * Idempotent producer (producer ID + sequence numbers, acks = all, one
   * request in flight per broker): a retried batch is not written twice.
   * Turn it off only for a broker without InitProducerId (librdkafka's mock
   * cluster). @default true
   */
  idempotent?: boolean;
  /** How long the leader may wait for the in-sync replicas before answering a produce, in ms (Produce `timeout`). Range 1..600000. @default 30000 */
  ackTimeoutMs?: number;
  /** Attempts kafkajs makes for one publish after the first fails with a retriable error (each may reconnect, see `retries`). Range 0..100. @default 3 */
  retries?: number;
  /** Codec of produced batches (kafkajs ships gzip; the others need codecs registered). @default 'none' */
  compression?: 'none' | 'gzip';
  /**
   * Largest produce the transport sends at once, in bytes (estimated from keys, values and headers);
   * a larger publish goes as consecutive produces, in order. Keep it below the brokers'
   * `message.max.bytes` (Kafka's default: 1 MiB). Range 1 KiB..64 MiB. @default 900000
   */
  batchBytesMax?: number;
}

/** Consumer settings of the kafkajs transport. */
export interface KafkaConsumerOptions {
  /** Session timeout of a group member, in ms (the broker bounds it: Kafka's default range is 6000..1800000). Range 1000..3600000. @default 10000 */
  sessionTimeoutMs?: number;
  /** Time between heartbeats, in ms; well below the session timeout. Range 100..600000. @default 3000 */
  heartbeatIntervalMs?: number;
  /** How long a rebalance waits for members to rejoin, in ms. Range 1000..3600000. @default 60000 */
  rebalanceTimeoutMs?: number;
  /** Byte budget of one fetch for one partition. Range 1 KiB..64 MiB. @default 1048576 */
  maxBytesPerPartition?: number;
  /**
   * Longest wait of one fetch for new records (long poll), in ms. Also bounds
   * how long closing a subscription waits for the fetch in flight. Range 1..60000. @default 1000
   */
  maxWaitMs?: number;
  /** First delay before retrying a record whose handler rejected, in ms; doubles per attempt. Range 1..600000. @default 100 */
  retryBackoffMs?: number;
  /** Longest delay between retries of one record, in ms. Range 1..3600000. @default 10000 */
  retryBackoffMaxMs?: number;
  /** Partitions whose records are handled at the same time by one subscription. Range 1..1024. @default 8 */
  partitionsConcurrently?: number;
}

/** Options of the kafkajs transport (`KafkaTransport`). */
export interface KafkaTransportOptions {
  /** Bootstrap brokers, `host:port` each. 1..100 entries. */
  brokers: string[];
  /** Client ID sent to the brokers. @default 'concordat' */
  clientId?: string;
  /** TLS: `true` for Node's default trust, or files. @default off */
  tls?: boolean | KafkaTlsOptions;
  sasl?: KafkaSaslOptions;
  /** Wait for a TCP (and TLS) connection to a broker, in ms. Range 100..120000. @default 3000 */
  connectionTimeoutMs?: number;
  /** Wait for the answer to one request, in ms. Range 1000..600000. @default 30000 */
  requestTimeoutMs?: number;
  /**
   * Attempts kafkajs makes after a retriable failure to connect, refresh
   * metadata or run an admin request; delays start at 100 ms and double up to
   * 2 s. A publish fails after about (producer.retries + 1) × this many
   * attempts when no broker answers; the outbox relay then retries it.
   * Range 0..100. @default 3
   */
  retries?: number;
  /**
   * Replication factor of the topics `ensureTopics` creates. 1 suits one
   * broker (`concordat broker`, a single Kafka node); use 3 on a cluster.
   * Range 1..32. @default 1
   */
  replicationFactor?: number;
  producer?: KafkaProducerOptions;
  consumer?: KafkaConsumerOptions;
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

const brokerSchema = z
  .string()
  .regex(HOST_PORT, 'must be host:port')
  .refine((value) => {
    const port = Number(value.slice(value.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65_535;
  }, 'port must be 1..65535');

const schema = z.strictObject({
  brokers: z.array(brokerSchema).min(1, 'must list at least one host:port').max(100),
  clientId: z.string().min(1).max(255).default('concordat'),
  tls: z
    .union([
      z.boolean(),
      z.strictObject({
        caFile: z.string().min(1).optional(),
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        rejectUnauthorized: z.boolean().default(true),
      }),
    ])
    .default(false),
  sasl: z
    .strictObject({
      mechanism: z.enum([KafkaSaslMechanism.PLAIN, KafkaSaslMechanism.SCRAM_SHA_256, KafkaSaslMechanism.SCRAM_SHA_512]),
      username: z.string().min(1).max(1024),
      password: z.string().min(1).max(1024),
    })
    .optional(),
  connectionTimeoutMs: z.number().int().min(100).max(120_000).default(3000),
  requestTimeoutMs: z.number().int().min(1000).max(600_000).default(30_000),
  retries: z.number().int().min(0).max(100).default(3),
  replicationFactor: z.number().int().min(1).max(32).default(1),
  producer: z
    .strictObject({
      idempotent: z.boolean().default(true),
      ackTimeoutMs: z.number().int().min(1).max(600_000).default(30_000),
      retries: z.number().int().min(0).max(100).default(3),
      compression: z.enum(['none', 'gzip']).default('none'),
      batchBytesMax: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(900_000),
    })
    .prefault({}),
  consumer: z
    .strictObject({
      sessionTimeoutMs: z.number().int().min(1000).max(3_600_000).default(10_000),
      heartbeatIntervalMs: z.number().int().min(100).max(600_000).default(3000),
      rebalanceTimeoutMs: z.number().int().min(1000).max(3_600_000).default(60_000),
      maxBytesPerPartition: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(1024 * 1024),
      maxWaitMs: z.number().int().min(1).max(60_000).default(1000),
      retryBackoffMs: z.number().int().min(1).max(600_000).default(100),
      retryBackoffMaxMs: z.number().int().min(1).max(3_600_000).default(10_000),
      partitionsConcurrently: z.number().int().min(1).max(1024).default(8),
    })
    .prefault({})
    .refine((consumer) => consumer.heartbeatIntervalMs < consumer.sessionTimeoutMs, {
      message: 'heartbeatIntervalMs must be less than sessionTimeoutMs',
    }),
});

/** {@link KafkaTransportOptions} with every field present and checked (durations in ms, sizes in bytes). */
export type CompiledKafkaTransportOptions = z.output<typeof schema>;

/** Validates and fills in {@link KafkaTransportOptions}. @throws ConcordatError CONFIG_INVALID naming the option */
export function compileKafkaTransportOptions(options: KafkaTransportOptions): CompiledKafkaTransportOptions {
  return compileOptions(schema, options, 'kafkaTransport');
}

/**
 * The kafkajs transport's options from the environment, or `undefined` when
 * `KAFKA_BROKERS` is unset or empty (then the embedded log is used):
 *
 * - `KAFKA_BROKERS`: comma-separated `host:port` list (required);
 * - `KAFKA_CLIENT_ID`;
 * - `KAFKA_SASL_MECHANISM` (`plain`, `scram-sha-256`, `scram-sha-512`),
 *   `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`: all three or none;
 * - `KAFKA_TLS` (`true`/`1`) and optionally `KAFKA_TLS_CA_FILE`,
 *   `KAFKA_TLS_CERT_FILE`, `KAFKA_TLS_KEY_FILE`;
 * - `KAFKA_REPLICATION_FACTOR` for the topics Concordat creates.
 *
 * @throws ConcordatError CONFIG_INVALID naming the variable
 */
export function kafkaTransportOptionsFromEnv(env: NodeJS.ProcessEnv): KafkaTransportOptions | undefined {
  const brokers = (env.KAFKA_BROKERS ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  if (brokers.length === 0) return undefined;
  const options: KafkaTransportOptions = { brokers };
  if (nonEmpty(env.KAFKA_CLIENT_ID)) options.clientId = env.KAFKA_CLIENT_ID;
  const sasl = [env.KAFKA_SASL_MECHANISM, env.KAFKA_SASL_USERNAME, env.KAFKA_SASL_PASSWORD];
  if (sasl.some(nonEmpty)) {
    if (!sasl.every(nonEmpty)) throw envInvalid('KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD go together');
    options.sasl = { mechanism: sasl[0]!.toLowerCase() as KafkaSaslMechanism, username: sasl[1]!, password: sasl[2]! };
  }
  const tlsFiles = { caFile: env.KAFKA_TLS_CA_FILE, certFile: env.KAFKA_TLS_CERT_FILE, keyFile: env.KAFKA_TLS_KEY_FILE };
  const tlsOn = /^(1|true|yes)$/i.test(env.KAFKA_TLS ?? '');
  if (tlsOn || Object.values(tlsFiles).some(nonEmpty)) {
    const files = Object.fromEntries(Object.entries(tlsFiles).filter(([, value]) => nonEmpty(value)));
    options.tls = Object.keys(files).length === 0 ? true : files;
  }
  if (nonEmpty(env.KAFKA_REPLICATION_FACTOR)) {
    const factor = Number(env.KAFKA_REPLICATION_FACTOR);
    if (!Number.isInteger(factor)) throw envInvalid(`KAFKA_REPLICATION_FACTOR must be an integer, got '${env.KAFKA_REPLICATION_FACTOR}'`);
    options.replicationFactor = factor;
  }
  compileKafkaTransportOptions(options);
  return options;
}

function nonEmpty(value: string | undefined): value is string {
  return value !== undefined && value.trim().length > 0;
}

function envInvalid(message: string): ConcordatError {
  return new ConcordatError(`invalid environment: ${message}`, { code: ErrorCode.CONFIG_INVALID });
}
