/**
 * Fetch (key 1), v4-v12 (v12 flexible, KIP-482): serves the record batches the log returns (a file
 * range read, sent with writev, never re-encoded), waiting up to
 * max_wait_ms until min_bytes are available.
 *
 *   Fetch Request (Version: 4) => replica_id max_wait_ms min_bytes max_bytes isolation_level [topics]
 *     replica_id => INT32
 *     max_wait_ms => INT32
 *     min_bytes => INT32
 *     max_bytes => INT32
 *     isolation_level => INT8
 *     topics => topic [partitions]
 *       topic => STRING
 *       partitions => partition fetch_offset partition_max_bytes
 *         partition => INT32
 *         fetch_offset => INT64
 *         partition_max_bytes => INT32
 *   Fetch Request (Version: 5-6) => (as 4)
 *       partitions => partition fetch_offset log_start_offset partition_max_bytes
 *         log_start_offset => INT64
 *   Fetch Request (Version: 7-8) => replica_id max_wait_ms min_bytes max_bytes isolation_level
 *                                   session_id session_epoch [topics] [forgotten_topics_data]
 *     session_id => INT32
 *     session_epoch => INT32
 *     forgotten_topics_data => topic [partitions]
 *       topic => STRING
 *       partitions => INT32
 *   Fetch Request (Version: 9-10) => (as 7)
 *       partitions => partition current_leader_epoch fetch_offset log_start_offset partition_max_bytes
 *         current_leader_epoch => INT32
 *   Fetch Request (Version: 11) => (as 9) rack_id
 *     rack_id => STRING
 *   Fetch Request (Version: 12) => (as 11, flexible: compact strings and arrays, a TAG_BUFFER after each struct)
 *       partitions => partition current_leader_epoch fetch_offset last_fetched_epoch log_start_offset partition_max_bytes
 *         last_fetched_epoch => INT32     a follower's (KIP-595), ignored
 *     TAG_BUFFER: cluster_id (tag 0), ignored
 *
 *   Fetch Response (Version: 4) => throttle_time_ms [responses]
 *     throttle_time_ms => INT32
 *     responses => topic [partitions]
 *       topic => STRING
 *       partitions => partition_index error_code high_watermark last_stable_offset [aborted_transactions] records
 *         partition_index => INT32
 *         error_code => INT16
 *         high_watermark => INT64
 *         last_stable_offset => INT64
 *         aborted_transactions => producer_id first_offset
 *           producer_id => INT64
 *           first_offset => INT64
 *         records => RECORDS
 *   Fetch Response (Version: 5-6) => (as 4)
 *       partitions => partition_index error_code high_watermark last_stable_offset log_start_offset
 *                     [aborted_transactions] records
 *         log_start_offset => INT64
 *   Fetch Response (Version: 7-10) => throttle_time_ms error_code session_id [responses]
 *     error_code => INT16
 *     session_id => INT32
 *   Fetch Response (Version: 11) => (as 7)
 *       partitions => ... [aborted_transactions] preferred_read_replica records
 *         preferred_read_replica => INT32
 *   Fetch Response (Version: 12) => (as 11, flexible; records => COMPACT_RECORDS); no partition
 *                                   tagged field is written (diverging_epoch, current_leader and
 *                                   snapshot_id concern followers and leader changes)
 *
 * v13+ name topics by topic ID (KIP-516), which the log does not have;
 * Metadata answers zero topic IDs, so librdkafka 2.4+ stays on v12.
 * Source: clients/src/main/resources/common/message/Fetch{Request,Response}.json.
 *
 * Limits: partition_max_bytes per partition and max_bytes (lowered to the
 * broker's fetchResponseBytesMax) for the response; as in Kafka (KIP-74) the
 * first partition with data returns at least one whole batch even when it
 * is larger, so a consumer never gets stuck; later partitions only return
 * batches that fit. max_wait_ms is lowered to fetchWaitMsMax.
 *
 * Incremental fetch sessions (KIP-227) are not kept: every response is a
 * full one with session_id 0, which clients take as "no session".
 *
 * Transactions (KIP-98): last_stable_offset is the partition's (the high
 * watermark, or the first offset of the oldest open transaction). With
 * isolation_level 1 (read_committed) a partition returns batches below it
 * only, and aborted_transactions lists the aborted transactions with data
 * in what it returns (producer ID, first offset): the client drops that
 * producer's batches from there until the ABORT marker. With 0
 * (read_uncommitted) everything up to the high watermark is returned and
 * the list is empty (Kafka sends null; both clients read either).
 *
 * @module
 */

import { AclOperation, topicAuthorized } from '../acl/index.js';
import { setMaxListeners } from 'node:events';
import { ConcordatError } from '../../errors.js';
import { IsolationLevel, type AbortedTransaction } from '../../log/index.js';
import { sleep } from '../../util/index.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { defineApi } from './api.js';

/** One partition of a Fetch: where to read from and how many bytes at most. */
export interface FetchPartitionRequest {
  partition: number;
  fetchOffset: number;
  partitionMaxBytes: number;
}

/** A Fetch request body, decoded (grammar in the file header). */
export interface FetchRequest {
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  isolationLevel: number;
  sessionId: number;
  sessionEpoch: number;
  topics: { topic: string; partitions: FetchPartitionRequest[] }[];
}

/** One partition's answer: its offsets, aborted transactions (read_committed) and whole record batches. */
export interface FetchPartitionResponse {
  partition: number;
  errorCode: number;
  highWatermark: number;
  lastStableOffset: number;
  logStartOffset: number;
  abortedTransactions: AbortedTransaction[];
  /** Never null: an error partition carries an empty set (see {@link failed}). */
  records: Buffer;
}

/** A Fetch response body, to encode (grammar in the file header). */
export interface FetchResponse {
  errorCode: number;
  topics: { topic: string; partitions: FetchPartitionResponse[] }[];
}

/** The Fetch API (key 1): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const fetch = defineApi<FetchRequest, FetchResponse>({
  key: 1,
  name: 'Fetch',
  minVersion: 4,
  maxVersion: 12,
  flexibleVersion: 12,

  decode(reader, version) {
    reader.int32(); // replica_id: always a consumer (-1) for a single broker
    const maxWaitMs = reader.int32();
    const minBytes = reader.int32();
    const maxBytes = reader.int32();
    const isolationLevel = reader.int8();
    const sessionId = version >= 7 ? reader.int32() : 0;
    const sessionEpoch = version >= 7 ? reader.int32() : -1;
    const topics = reader.flexArray((t) => {
      const topic = t.flexString();
      const partitions = t.flexArray((p) => {
        const partition = p.int32();
        if (version >= 9) p.int32(); // current_leader_epoch
        const fetchOffset = p.int64();
        if (version >= 12) p.int32(); // last_fetched_epoch: a follower's, not used
        if (version >= 5) p.int64(); // log_start_offset: a follower's, not used
        const partitionMaxBytes = p.int32();
        p.flexTags();
        return { partition, fetchOffset, partitionMaxBytes };
      });
      t.flexTags();
      return { topic, partitions };
    });
    if (version >= 7) {
      // forgotten_topics_data: only for fetch sessions, which are not kept
      reader.flexArray((t) => {
        t.flexString();
        t.flexArray((p) => p.int32());
        t.flexTags();
      });
    }
    if (version >= 11) reader.flexString(); // rack_id
    reader.flexTags(); // cluster_id (tag 0)
    return { maxWaitMs, minBytes, maxBytes, isolationLevel, sessionId, sessionEpoch, topics };
  },

  async handle(request, context) {
    if (request.sessionEpoch > 0 || (request.sessionId !== 0 && request.sessionEpoch !== -1)) {
      // We never hand out a session, so an incremental fetch names one we do not know.
      return { errorCode: KafkaError.FETCH_SESSION_ID_NOT_FOUND, topics: [] };
    }
    return { errorCode: KafkaError.NONE, topics: await longPoll(request, context) };
  },

  encode(writer, version, response) {
    writer.int32(0);
    if (version >= 7) writer.int16(response.errorCode).int32(0);
    writer.flexArray(response.topics, (w, topic) => {
      w.flexString(topic.topic).flexArray(topic.partitions, (pw, p) => {
        pw.int32(p.partition).int16(p.errorCode).int64(p.highWatermark).int64(p.lastStableOffset);
        if (version >= 5) pw.int64(p.logStartOffset);
        pw.flexArray(p.abortedTransactions, (aw, a) => aw.int64(a.producerId).int64(a.firstOffset).flexTags());
        if (version >= 11) pw.int32(-1); // preferred_read_replica: none
        pw.flexBytes(p.records);
        pw.flexTags();
      });
      w.flexTags();
    });
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return {
      errorCode: KafkaError.NONE,
      topics: request.topics.map((t) => ({ topic: t.topic, partitions: t.partitions.map((p) => failed(p.partition, errorCode)) })),
    };
  },
});

/**
 * A partition that failed: its error code and an empty record set (size 0),
 * as Kafka answers, never a null one (size -1): librdkafka takes a negative
 * record-set size as a parse failure, drops the whole response without
 * seeing the error code, and fetches again at once.
 */
function failed(partition: number, errorCode: number): FetchPartitionResponse {
  return { partition, errorCode, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, abortedTransactions: [], records: NO_RECORDS };
}

const NO_RECORDS = Buffer.alloc(0);

/** Kafka answers at once when any partition failed. */
function hasError(topics: FetchResponse['topics']): boolean {
  return topics.some((topic) => topic.partitions.some((p) => p.errorCode !== KafkaError.NONE));
}

/** Bytes of the record data in a response. */
function recordBytes(topics: FetchResponse['topics']): number {
  let total = 0;
  for (const topic of topics) for (const p of topic.partitions) total += p.records.length;
  return total;
}

/**
 * Reads every partition at once; while fewer than min_bytes came back and
 * the wait has not run out, waits for any partition to grow (or for the
 * connection or the broker to close), then reads again.
 */
async function longPoll(request: FetchRequest, context: RequestContext): Promise<FetchResponse['topics']> {
  const options = context.broker.options;
  const maxWaitMs = Math.max(0, Math.min(request.maxWaitMs, options.fetchWaitMsMax));
  const deadline = Date.now() + maxWaitMs;
  const minBytes = Math.max(1, request.minBytes);
  for (;;) {
    const topics = await readOnce(request, context);
    const left = deadline - Date.now();
    if (recordBytes(topics) >= minBytes || left <= 0 || hasError(topics) || stopped(context)) return topics;
    await waitForData(request, topics, context, left);
    if (stopped(context)) return topics;
  }
}

function stopped(context: RequestContext): boolean {
  return context.connection.signal.aborted || context.broker.closing.aborted;
}

async function readOnce(request: FetchRequest, context: RequestContext): Promise<FetchResponse['topics']> {
  const logManager = context.broker.logManager;
  let budget = Math.max(0, Math.min(request.maxBytes, context.broker.options.fetchResponseBytesMax));
  let first = true;
  const isolationLevel = isolationOf(request);
  const topics: FetchResponse['topics'] = [];
  for (const topic of request.topics) {
    const partitions: FetchPartitionResponse[] = [];
    if (!topicAuthorized(context, AclOperation.READ, topic.topic)) {
      topics.push({ topic: topic.topic, partitions: topic.partitions.map((p) => failed(p.partition, KafkaError.TOPIC_AUTHORIZATION_FAILED)) });
      continue;
    }
    for (const p of topic.partitions) {
      const limit = Math.min(Math.max(0, p.partitionMaxBytes), budget);
      try {
        const result = await logManager.read(topic.topic, p.partition, p.fetchOffset, { maxBytes: Math.max(1, limit), isolationLevel });
        const records = first ? result.records : wholeBatchesWithin(result.records, limit);
        if (records.length > 0) first = false;
        budget = Math.max(0, budget - records.length);
        partitions.push({
          partition: p.partition,
          errorCode: KafkaError.NONE,
          highWatermark: result.highWatermark,
          lastStableOffset: result.lastStableOffset,
          logStartOffset: result.logStartOffset,
          abortedTransactions: abortedWithin(result.abortedTransactions, records),
          records,
        });
      } catch (error) {
        partitions.push(failed(p.partition, readErrorCode(error, context, topic.topic, p.partition)));
      }
    }
    topics.push({ topic: topic.topic, partitions });
  }
  return topics;
}

function isolationOf(request: FetchRequest): IsolationLevel {
  return request.isolationLevel === 1 ? IsolationLevel.READ_COMMITTED : IsolationLevel.READ_UNCOMMITTED;
}

/** The aborted transactions with data in `records` (which may have been cut to fewer batches than were read). */
function abortedWithin(aborted: AbortedTransaction[] | undefined, records: Buffer): AbortedTransaction[] {
  if (aborted === undefined || aborted.length === 0) return [];
  const end = offsetAfter(records);
  return end === null ? [] : aborted.filter((a) => a.firstOffset < end);
}

function readErrorCode(error: unknown, context: RequestContext, topic: string, partition: number): number {
  const code = kafkaErrorCodeOf(error);
  // A disk failure is the operator's to see; the client only backs off and fetches again.
  if (code === KafkaError.UNKNOWN_SERVER_ERROR || code === KafkaError.KAFKA_STORAGE_ERROR || !(error instanceof ConcordatError)) {
    context.broker.logger.error({ err: error, topic, partition }, 'read failed');
  }
  return code;
}

const BATCH_LENGTH_AT = 8;
const LOG_OVERHEAD_BYTES = 12;

/** The longest prefix of `records` made of whole batches and at most `limit` bytes. */
function wholeBatchesWithin(records: Buffer, limit: number): Buffer {
  if (records.length <= limit) return records;
  let end = 0;
  while (end + LOG_OVERHEAD_BYTES <= records.length) {
    const next = end + LOG_OVERHEAD_BYTES + records.readInt32BE(end + BATCH_LENGTH_AT);
    if (next > limit) break;
    end = next;
  }
  return records.subarray(0, end);
}

/** Offset just past the last batch in `records` (baseOffset + lastOffsetDelta + 1), or null when empty. */
function offsetAfter(records: Buffer): number | null {
  if (records.length < 61) return null;
  let at = 0;
  let next: number | null = null;
  while (at + 61 <= records.length) {
    const baseOffset = Number(records.readBigInt64BE(at));
    const lastOffsetDelta = records.readInt32BE(at + 23);
    next = baseOffset + lastOffsetDelta + 1;
    at += LOG_OVERHEAD_BYTES + records.readInt32BE(at + BATCH_LENGTH_AT);
  }
  return next;
}

/**
 * How long a partition whose long poll the log refused (readWaitersMax
 * reached, the topic just deleted, ...) waits before the fetch reads again:
 * it cannot be woken by new data, so it polls at this pace instead of
 * retrying at once, which would spin a core until the fetch's max wait.
 */
const REFUSED_WAIT_POLL_MS = 100;

/**
 * Waits until one partition has data past what was just read, or `waitMs`
 * passes, or the connection or the broker closes. Each partition's wait is a
 * log long poll (at most the log's readWaitMsMax); the first to finish
 * aborts the others. A long poll the log refuses becomes a timer of
 * {@link REFUSED_WAIT_POLL_MS}, after which the fetch reads again (and
 * answers the partition's error, if it has one).
 */
async function waitForData(request: FetchRequest, current: FetchResponse['topics'], context: RequestContext, waitMs: number): Promise<void> {
  const done = new AbortController();
  const signal = AbortSignal.any([done.signal, context.connection.signal, context.broker.closing]);
  // Each partition's long poll (and its refused-wait timer) listens on this one signal: allow one
  // listener per partition of the request (bounded by arrayLengthMax) instead of Node's default 10,
  // past which Node prints MaxListenersExceededWarning. They are all removed when the wait ends.
  setMaxListeners(
    request.topics.reduce((n, topic) => n + topic.partitions.length, 1),
    signal,
  );
  const logManager = context.broker.logManager;
  const pollMs = Math.min(waitMs, logManager.options.readWaitMsMax);
  // A log with readWaitMsMax 0 does not long-poll at all: read again after a pause.
  if (pollMs === 0) {
    await sleep(Math.min(waitMs, REFUSED_WAIT_POLL_MS), signal);
    return;
  }
  const waits: Promise<unknown>[] = [];
  request.topics.forEach((topic, t) => {
    topic.partitions.forEach((p, i) => {
      const seen = current[t]?.partitions[i];
      if (seen === undefined) return;
      const from = offsetAfter(seen.records) ?? p.fetchOffset;
      const wait = logManager.read(topic.topic, p.partition, from, {
        maxBytes: 1,
        minBytes: 1,
        maxWaitMs: pollMs,
        signal,
        isolationLevel: isolationOf(request),
      });
      waits.push(wait.catch(() => sleep(Math.min(pollMs, REFUSED_WAIT_POLL_MS), signal)));
    });
  });
  if (waits.length === 0) {
    await sleep(waitMs, signal);
    return;
  }
  try {
    await Promise.race(waits);
  } finally {
    done.abort();
    await Promise.allSettled(waits);
  }
}
