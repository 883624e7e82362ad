/*
 * The shapes of one partition's log API (partition-log.ts): what an append
 * and a read take and return, the partition's description and retention
 * result, the events it reports, and the context LogManager gives it.
 * LogManager's own API shapes are in log-manager-types.ts.
 */

import type { TopicConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import type { DedupWindow, RecordLocation } from './dedup-window.js';
import type { FilePool } from './file-pool.js';
import type { GroupCommitFlusher } from './flush.js';
import type { IndexCache } from './index-cache.js';
import type { SegmentEvent } from './segment.js';
import type { AbortedTransaction } from './transaction-index.js';

/** What an append resolves with (Kafka's ProduceResponse partition fields). */
export interface AppendResult {
  /** Offset of the first record appended (for a duplicate: of the original). */
  baseOffset: number;
  /** Offset of the last record appended (for a duplicate: of the original). */
  lastOffset: number;
  /** Kafka's logAppendTime: -1, since timestamps are the producer's (CreateTime). */
  logAppendTimeMs: number;
  /** The partition's log start offset when the append was acknowledged. */
  logStartOffset: number;
  /** Present and true when nothing was written: the append repeated an earlier one (idempotent retry, or every record within the dedup window). */
  duplicate?: true;
  /**
   * Where each input record is, in input order, on topics with a dedup
   * window: a repeated record's location is its original's (possibly on
   * another partition of the topic).
   */
  recordLocations?: RecordLocation[];
}

/** Kafka's isolation levels of a read (Fetch isolation_level 0 and 1). */
export const IsolationLevel = { READ_UNCOMMITTED: 'read_uncommitted', READ_COMMITTED: 'read_committed' } as const;
/** `read_uncommitted` or `read_committed`. */
export type IsolationLevel = (typeof IsolationLevel)[keyof typeof IsolationLevel];

/** Options of a read (`PartitionLog.read`, `LogManager.read`): Kafka's Fetch fields for one partition. */
export interface ReadOptions {
  /** Byte budget of the result; at least one whole batch is returned when one exists. */
  maxBytes: number;
  /** Wait until at least this many bytes are available. @default 1 */
  minBytes?: number;
  /** Longest wait for minBytes, in ms. @default 0 */
  maxWaitMs?: number;
  /** Ends the wait early; the read then returns what is there (possibly nothing). */
  signal?: AbortSignal;
  /**
   * Read into this buffer when the result fits (the result is then a view
   * of it), sparing an allocation per read. Only for a caller that is done
   * with the previous result, and every view into it, before reading again.
   */
  buffer?: Buffer;
  /**
   * read_committed: only batches below the last stable offset, with the
   * aborted transactions among them in the result. @default 'read_uncommitted'
   */
  isolationLevel?: IsolationLevel;
}

/** What a read returns: the bytes and the partition's offsets as the read saw them. */
export interface ReadResult {
  /** Whole RecordBatch v2 batches, starting with the one that holds the requested offset. */
  records: Buffer;
  /** Offset after the last acknowledged record. */
  highWatermark: number;
  /** First offset still stored. */
  logStartOffset: number;
  /** The high watermark, or the first offset of the oldest transaction still open, if lower. */
  lastStableOffset: number;
  /** Offset after the last record written (acknowledged or not). */
  logEndOffset: number;
  /** read_committed reads only: the aborted transactions with data in `records`, by first offset. */
  abortedTransactions?: AbortedTransaction[];
}

/** One partition's offsets and size now (`PartitionLog.describe`). */
export interface PartitionDescription {
  partition: number;
  /** First offset still stored (ListOffsets earliest). */
  logStartOffset: number;
  /** Offset after the last acknowledged record (ListOffsets latest). */
  highWatermark: number;
  /** The high watermark, or the first offset of the oldest open transaction, if lower. */
  lastStableOffset: number;
  /** Offset after the last record written (acknowledged or not). */
  logEndOffset: number;
  /** Bytes of the partition's `.log` files. */
  sizeBytes: number;
  /** Segments, the active one included. */
  segmentCount: number;
  /** Long-poll reads waiting for an append right now (at most the log's `readWaitersMax`). */
  readsWaiting: number;
}

/** A repair or finding while opening or reading a partition. */
export interface RecoveryEvent extends SegmentEvent {
  topic: string;
  partition: number;
}

/** What a partition gets from LogManager: where it lives, its config, and the log's shared resources. */
export interface PartitionLogContext {
  topic: string;
  partition: number;
  dir: string;
  config: TopicConfig;
  flusher: GroupCommitFlusher;
  pool: FilePool;
  indexCache: IndexCache;
  appendQueueBytesMax: number;
  readWaitersMax: number;
  decompressedBatchBytesMax: number;
  producerIdExpirationMs: number;
  producersPerPartitionMax: number;
  /** The topic's message-ID dedup window, or null when the topic has none. */
  dedup: DedupWindow | null;
  logger: Logger;
  report(event: RecoveryEvent): void;
}

/** Retention's work on one partition. */
export interface RetentionResult {
  /** Segments deleted. */
  deletedSegments: number;
  /** Bytes of their `.log` files. */
  deletedBytes: number;
  /** The log start offset after the deletion. */
  logStartOffset: number;
}
