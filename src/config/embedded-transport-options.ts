import { z } from 'zod';
import type { ConcordatError } from '../errors.js';
import type { CompressionType } from '../log/index.js';
import type { LogManagerOptions } from './log-options.js';
import { compileOptions } from './compile.js';

/** The codecs of {@link EmbeddedProducerOptions.compression}: the log's `CompressionType` values (checked below). */
const COMPRESSION_TYPES = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const compressionTypesMatchTheLog: Same<(typeof COMPRESSION_TYPES)[number], CompressionType> = true;
void compressionTypesMatchTheLog;

/** Consumer settings of the embedded transport. */
export interface EmbeddedConsumerOptions {
  /** Session timeout of the group member, in ms. Range 1..86400000 (and within the log's groups limits). @default 10000 */
  sessionTimeoutMs?: number;
  /** Time between heartbeats, in ms. Range 1..3600000. @default 3000 */
  heartbeatIntervalMs?: number;
  /** How long a rebalance waits for members to rejoin, in ms. Range 1..3600000. @default 60000 */
  rebalanceTimeoutMs?: number;
  /** Byte budget of one read of one partition. Range 1 KiB..64 MiB. @default 1048576 */
  maxBytesPerPartition?: number;
  /** Longest wait of one read for new records (long poll), in ms. Range 1..600000. @default 5000 */
  maxWaitMs?: number;
  /** First delay before retrying a record whose handler rejected, in ms; doubles per attempt. Range 1..600000. @default 100 */
  retryBackoffMs?: number;
  /** Longest delay between retries of one record, in ms. Range 1..3600000. @default 10000 */
  retryBackoffMaxMs?: number;
  /** Partition assignors, in order of preference; all members of a group must share one. @default ['range', 'roundrobin'] */
  assignors?: ('range' | 'roundrobin')[];
  /**
   * Called when a partition's position is out of the log's range (its
   * records were deleted by retention, or the log was cut), before the
   * member moves to where the subscription's `offsetReset` says (the log
   * start for 'earliest', the high watermark for 'latest'). `error` is the
   * log's OFFSET_OUT_OF_RANGE. Also logged at warn level.
   */
  onOffsetReset?: (event: OffsetResetEvent) => void;
}

/** A partition's position moved by the reset policy. */
export interface OffsetResetEvent {
  groupId: string;
  topic: string;
  partition: number;
  /** The position that was out of range. */
  from: number;
  /** Where delivery continues. */
  to: number;
  error: ConcordatError;
}

/** Producer settings of the embedded transport. */
export interface EmbeddedProducerOptions {
  /** Codec of published batches. @default 'none' */
  compression?: CompressionType;
  /** Largest batch the producer builds, in bytes (a larger single record goes alone). Range 1 KiB..64 MiB. @default 524288 */
  batchBytesMax?: number;
}

/** Options of the embedded transport (over a log it opens, or over one someone else opened and closes). */
export interface EmbeddedTransportOverLogOptions {
  consumer?: EmbeddedConsumerOptions;
  producer?: EmbeddedProducerOptions;
  /** Client ID reported to the group coordinator. @default 'concordat-embedded' */
  clientId?: string;
}

const schema = z.strictObject({
  consumer: z
    .strictObject({
      sessionTimeoutMs: z.number().int().min(1).max(86_400_000).default(10_000),
      heartbeatIntervalMs: z.number().int().min(1).max(3_600_000).default(3000),
      rebalanceTimeoutMs: z.number().int().min(1).max(3_600_000).default(60_000),
      maxBytesPerPartition: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(1024 * 1024),
      maxWaitMs: z.number().int().min(1).max(600_000).default(5000),
      retryBackoffMs: z.number().int().min(1).max(600_000).default(100),
      retryBackoffMaxMs: z.number().int().min(1).max(3_600_000).default(10_000),
      assignors: z
        .array(z.enum(['range', 'roundrobin']))
        .min(1)
        .max(2)
        .default(['range', 'roundrobin']),
      onOffsetReset: z.custom<(event: OffsetResetEvent) => void>((value) => typeof value === 'function', 'must be a function').optional(),
    })
    .prefault({}),
  producer: z
    .strictObject({
      compression: z.enum(COMPRESSION_TYPES).default('none'),
      batchBytesMax: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(512 * 1024),
    })
    .prefault({}),
  clientId: z.string().min(1).max(255).default('concordat-embedded'),
});

/** {@link EmbeddedTransportOverLogOptions} with every default filled in. */
export type CompiledEmbeddedTransportOptions = z.output<typeof schema>;
/** The consumer part of {@link CompiledEmbeddedTransportOptions}. */
export type CompiledEmbeddedConsumerOptions = CompiledEmbeddedTransportOptions['consumer'];

/**
 * Validates and fills in the embedded transport's options.
 * @throws ConcordatError CONFIG_INVALID naming the option (`embeddedTransport.<path>`)
 */
export function compileEmbeddedTransportOptions(options: EmbeddedTransportOverLogOptions = {}): CompiledEmbeddedTransportOptions {
  return compileOptions(schema, options, 'embeddedTransport');
}

/**
 * The log an embedded transport opens itself (`new EmbeddedTransport({ dataDir, log })`):
 * where, and its further options (validated in full by `LogManager.open`).
 */
export interface EmbeddedTransportLogOptions {
  /** Directory of the log the transport opens (and closes). Non-empty. */
  dataDir: string;
  /** Further options of that log. @default {} */
  log?: Omit<LogManagerOptions, 'dataDir'>;
}

const NON_EMPTY_PATH = 'must be a non-empty path';
const logSchema = z.object({
  dataDir: z.string({ error: NON_EMPTY_PATH }).min(1, NON_EMPTY_PATH),
  log: z.custom<Omit<LogManagerOptions, 'dataDir'>>().default({}),
});

/** {@link EmbeddedTransportLogOptions} with `log` filled in. */
export type CompiledEmbeddedTransportLogOptions = z.output<typeof logSchema>;

/**
 * Validates the log an embedded transport is to open.
 * @throws ConcordatError CONFIG_INVALID naming the option: `invalid options: embeddedTransport.dataDir: must be a non-empty path (got "")`
 */
export function compileEmbeddedTransportLogOptions(options: EmbeddedTransportLogOptions): CompiledEmbeddedTransportLogOptions {
  return compileOptions(logSchema, { dataDir: options.dataDir, log: options.log ?? undefined }, 'embeddedTransport');
}
