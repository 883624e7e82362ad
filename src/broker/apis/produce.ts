/**
 * Produce (key 0), v0-v11 (v9+ flexible, KIP-482): appends the client's record batches (RecordBatch
 * v2, as they came: the log checks them and rewrites only baseOffset) and
 * answers once they are durable (after fdatasync, shared by concurrent
 * appends). acks 1 and -1 both wait for that; acks 0 gets no response, and
 * a failed acks-0 append closes the connection so the client notices (as
 * Kafka does).
 *
 * Why v0-v2 are advertised although the log stores only RecordBatch v2
 * (which needs v3): librdkafka up to 2.11.0 compresses with gzip, snappy or
 * lz4 only if the broker's Produce range includes v0
 * (`rd_kafka_msgset_writer_select_MsgVersion`: it asks for support within
 * [0, 0]); without it kcat -z sends uncompressed batches. Every client we
 * test picks v7. A v0-v2 request is served, and its old message-set formats
 * (magic 0 and 1) are refused per partition with UNSUPPORTED_FOR_MESSAGE_FORMAT.
 *
 *   Produce Request (Version: 0-2) => acks timeout_ms [topic_data]
 *   Produce Request (Version: 3-7) => transactional_id acks timeout_ms [topic_data]
 *     transactional_id => NULLABLE_STRING
 *     acks => INT16
 *     timeout_ms => INT32
 *     topic_data => name [partition_data]
 *       name => STRING
 *       partition_data => index records
 *         index => INT32
 *         records => RECORDS
 *
 *   Produce Response (Version: 0) => [responses]
 *     responses => name [partition_responses]
 *       name => STRING
 *       partition_responses => index error_code base_offset
 *         index => INT32
 *         error_code => INT16
 *         base_offset => INT64
 *   Produce Response (Version: 1) => [responses] throttle_time_ms
 *     throttle_time_ms => INT32
 *   Produce Response (Version: 2-4) => [responses] throttle_time_ms
 *       partition_responses => index error_code base_offset log_append_time_ms
 *         log_append_time_ms => INT64
 *   Produce Response (Version: 5-7) => [responses] throttle_time_ms
 *       partition_responses => index error_code base_offset log_append_time_ms log_start_offset
 *         log_start_offset => INT64
 *   Produce Response (Version: 8) => [responses] throttle_time_ms
 *       partition_responses => index error_code base_offset log_append_time_ms log_start_offset
 *                              [record_errors] error_message
 *         record_errors => batch_index batch_index_error_message     (KIP-467; always empty here)
 *           batch_index => INT32
 *           batch_index_error_message => NULLABLE_STRING
 *         error_message => NULLABLE_STRING                         the reason of a partition's error
 *   Produce Request and Response (Version: 9-11) => as v8, flexible (compact strings, arrays and
 *     records, a TAG_BUFFER after each struct). v10 adds tagged fields for a new leader
 *     (current_leader, node_endpoints, KIP-951): never written, there is one leader. v11 lets
 *     the broker answer TRANSACTION_ABORTABLE (KIP-890), which this one never does.
 *
 * v12 (KIP-890 part 2: the broker adds a partition to the transaction on
 * Produce) is not served. Source: clients/src/main/resources/common/message/Produce{Request,Response}.json.
 *
 * Transactional producers (transactional_id set, batches with attribute
 * bit 4) append like idempotent ones; the partition opens their
 * transaction at the first such batch, and the coordinator's marker closes
 * it (log/transaction-index.ts). A producer whose epoch a marker fenced
 * gets INVALID_PRODUCER_EPOCH. A transactional batch must name the
 * transactional ID of an ongoing transaction that added the partition,
 * else INVALID_TXN_STATE (KIP-890's check: a batch outside the transaction
 * would hold the partition's last stable offset for good).
 *
 * Appends are issued before the handler's first `await` (when the topics
 * exist), in request order, so requests pipelined on one connection land
 * in the order they were sent.
 *
 * Topics with a message-ID dedup window (the log's `dedupWindowMs`,
 * `concordat.dedup.window.ms` over the wire): a record whose `ce_id` was
 * appended within the window is acknowledged but not written again, and
 * its original may sit at another offset or on another partition. A
 * response says only `base_offset`, from which a client takes record i to
 * be at base_offset + i in this partition. So the broker answers:
 * - the offset of the first record when every record of the request's
 *   partition data is at base_offset + i in this partition — nothing
 *   repeated, or everything repeated a contiguous run in this partition
 *   (a retried batch: its original offsets, as for idempotent producers);
 * - otherwise -1, Kafka's "offset unknown" (the Java client then reports
 *   every record's offset as -1): the records are durably in the log, with
 *   error NONE, but no single base offset says where — some were dropped as
 *   repeats of records elsewhere. librdkafka adds i to it regardless (-1, 0,
 *   1, ...), so its offsets for such a batch are meaningless, as they are
 *   for acks=0; kafkajs passes -1 through.
 * Batches of idempotent producers are never cut by the window (their
 * sequences would break), so they always get their real base offset.
 *
 * @module
 */

import { AclOperation, topicAuthorized, topicCreateAuthorized, transactionalIdAuthorized } from '../acl/index.js';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { readBatchHeader, RECORD_BATCH_HEADER_BYTES, type AppendResult } from '../../log/index.js';
import { KafkaError, transactionErrorCodeOf } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { defineApi } from './api.js';

/** One partition's record batches in a Produce request. */
export interface ProducePartitionData {
  index: number;
  records: Buffer | null;
}

/** A Produce request body, decoded (grammar in the file header). */
export interface ProduceRequest {
  transactionalId: string | null;
  acks: number;
  timeoutMs: number;
  topics: { name: string; partitions: ProducePartitionData[] }[];
}

/** One partition's answer: its error, the base offset of the appended batches, logAppendTime (-1) and log start offset. */
export interface ProducePartitionResponse {
  index: number;
  errorCode: number;
  baseOffset: number;
  logAppendTimeMs: number;
  logStartOffset: number;
  /** v8+: why the partition failed, or null. */
  errorMessage?: string | null;
}

/** A Produce response body, to encode (grammar in the file header). */
export interface ProduceResponse {
  topics: { name: string; partitions: ProducePartitionResponse[] }[];
}

const ACKS = new Set([0, 1, -1]);

/** The Produce API (key 0): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const produce = defineApi<ProduceRequest, ProduceResponse>({
  key: 0,
  name: 'Produce',
  minVersion: 0,
  maxVersion: 11,
  flexibleVersion: 9,

  decode(reader, version) {
    const request = {
      transactionalId: version >= 3 ? reader.flexNullableString() : null,
      acks: reader.int16(),
      timeoutMs: reader.int32(),
      topics: reader.flexArray((t) => {
        const name = t.flexString();
        const partitions = t.flexArray((p) => {
          const partition = { index: p.int32(), records: p.flexNullableBytes() };
          p.flexTags();
          return partition;
        });
        t.flexTags();
        return { name, partitions };
      }),
    };
    reader.flexTags();
    return request;
  },

  async handle(request, context) {
    const refusal = refuse(request) ?? transactionalIdRefusal(context, request.transactionalId);
    const pending = request.topics.map((topic) => {
      const resolved = refusal ?? resolveAuthorized(context, topic.name);
      return typeof resolved === 'number'
        ? appendTopic(context, request.transactionalId, topic.name, topic.partitions, resolved)
        : resolved.then((code) => appendTopic(context, request.transactionalId, topic.name, topic.partitions, code));
    });
    // eslint-disable-next-line @typescript-eslint/await-thenable -- values and Promises mixed on purpose: a known topic appends without waiting
    const topics = await Promise.all(pending);
    const response = { topics: request.topics.map((topic, i) => ({ name: topic.name, partitions: topics[i]! })) };
    if (request.acks !== 0) return response;
    const failed = response.topics.flatMap((t) => t.partitions.map((p) => ({ topic: t.name, ...p }))).find((p) => p.errorCode !== 0);
    if (failed !== undefined) {
      context.connection.close(`acks=0 produce to ${failed.topic}-${failed.index} failed with error ${failed.errorCode}`);
    }
    return null;
  },

  encode(writer, version, response) {
    writer.flexArray(response.topics, (w, topic) => {
      w.flexString(topic.name).flexArray(topic.partitions, (pw, p) => {
        pw.int32(p.index).int16(p.errorCode).int64(p.baseOffset);
        if (version >= 2) pw.int64(p.logAppendTimeMs);
        if (version >= 5) pw.int64(p.logStartOffset);
        if (version >= 8) pw.flexArray([], () => undefined).flexNullableString(p.errorMessage ?? null); // record_errors, error_message
        pw.flexTags();
      });
      w.flexTags();
    });
    if (version >= 1) writer.int32(0);
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return {
      topics: request.topics.map((topic) => ({
        name: topic.name,
        partitions: topic.partitions.map((p) => failure(p.index, errorCode)),
      })),
    };
  },
});

/** TRANSACTIONAL_ID_AUTHORIZATION_FAILED for the whole request when its transactional ID may not be written, else null. */
function transactionalIdRefusal(context: RequestContext, transactionalId: string | null): number | null {
  if (transactionalId === null || transactionalIdAuthorized(context, AclOperation.WRITE, transactionalId)) return null;
  return KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
}

/**
 * A topic's error: TOPIC_AUTHORIZATION_FAILED without Write on it; an
 * unknown topic is auto-created only if the principal may also create it.
 * Synchronous for a known topic (appends keep the order of the requests).
 */
function resolveAuthorized(context: RequestContext, topic: string): number | Promise<number> {
  if (!topicAuthorized(context, AclOperation.WRITE, topic)) return KafkaError.TOPIC_AUTHORIZATION_FAILED;
  return context.broker.topics.resolve(topic, topicCreateAuthorized(context, topic));
}

/** A whole-request refusal, or null. */
function refuse(request: ProduceRequest): number | null {
  if (!ACKS.has(request.acks)) return KafkaError.INVALID_REQUIRED_ACKS;
  return null;
}

function failure(index: number, errorCode: number): ProducePartitionResponse {
  return { index, errorCode, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1 };
}

/**
 * A transactional batch must come with the transactional ID of the
 * producer's ongoing transaction, to a partition it added: otherwise it
 * would open a transaction no marker closes (see
 * TransactionCoordinator.checkProduce). Runs synchronously just before the
 * append. Non-transactional batches pass.
 * @throws ConcordatError INVALID_TXN_STATE, INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED
 */
/** Byte of the magic in a RecordBatch header (record-batch.ts). */
const MAGIC_AT = 16;

function checkTransactional(context: RequestContext, transactionalId: string | null, topic: string, partition: number, records: Buffer): void {
  // A batch too short, or an old message set (magic 0, 1, no such attribute): the log refuses it with the right error.
  if (records.length < RECORD_BATCH_HEADER_BYTES || records.readInt8(MAGIC_AT) !== 2) return;
  const header = readBatchHeader(records, 0);
  if (!header.isTransactional) return;
  if (transactionalId === null) {
    throw new ConcordatError(`a transactional batch for ${topic}-${partition} came without a transactional_id`, { code: ErrorCode.INVALID_TXN_STATE });
  }
  context.broker.logManager.transactions.checkProduce(transactionalId, header.producerId, header.producerEpoch, topic, partition);
}

function appendTopic(
  context: RequestContext,
  transactionalId: string | null,
  topic: string,
  partitions: ProducePartitionData[],
  topicError: number,
): Promise<ProducePartitionResponse[]> | ProducePartitionResponse[] {
  if (topicError !== KafkaError.NONE) return partitions.map((p) => failure(p.index, topicError));
  const count = context.broker.topics.partitions(topic) ?? 0;
  return Promise.all(
    partitions.map(async (p): Promise<ProducePartitionResponse> => {
      if (p.index < 0 || p.index >= count) return failure(p.index, KafkaError.UNKNOWN_TOPIC_OR_PARTITION);
      if (p.records === null || p.records.length === 0) return failure(p.index, KafkaError.CORRUPT_MESSAGE);
      try {
        checkTransactional(context, transactionalId, topic, p.index, p.records);
        const result = await context.broker.logManager.append(topic, p.index, p.records);
        return {
          index: p.index,
          errorCode: KafkaError.NONE,
          baseOffset: answeredBaseOffset(result, p.index),
          logAppendTimeMs: result.logAppendTimeMs,
          logStartOffset: result.logStartOffset,
        };
      } catch (error) {
        const errorCode = transactionErrorCodeOf(error);
        if (errorCode === KafkaError.UNKNOWN_SERVER_ERROR) {
          context.broker.logger.error({ err: error, topic, partition: p.index }, 'append failed');
        }
        // A server error is the operator's to read in the log, not the client's.
        const errorMessage = errorCode !== KafkaError.UNKNOWN_SERVER_ERROR && error instanceof ConcordatError ? error.message : null;
        return { ...failure(p.index, errorCode), errorMessage };
      }
    }),
  );
}

/**
 * The base_offset to answer for an acknowledged append: where its first
 * record is, when every record i is at that offset + i in `partition`;
 * else -1 (see the file comment: a dedup window dropped records whose
 * originals are elsewhere).
 */
export function answeredBaseOffset(result: AppendResult, partition: number): number {
  const locations = result.recordLocations;
  if (locations === undefined) return result.baseOffset;
  const base = locations[0]?.offset ?? -1;
  const contiguous = locations.every((location, i) => location.partition === partition && location.offset === base + i);
  return contiguous ? base : -1;
}
