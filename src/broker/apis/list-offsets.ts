/**
 * ListOffsets (key 2), v1-v6 (v6 flexible, KIP-482): the offset for a timestamp: -1 latest (the
 * high watermark), -2 earliest (the log start offset), otherwise the first
 * offset whose record timestamp is at or after it (from the time index), or
 * -1 when there is none (the log's time index answers).
 *
 *   ListOffsets Request (Version: 1) => replica_id [topics]
 *     replica_id => INT32
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index timestamp
 *         partition_index => INT32
 *         timestamp => INT64
 *   ListOffsets Request (Version: 2-3) => replica_id isolation_level [topics]
 *     isolation_level => INT8
 *
 *   ListOffsets Response (Version: 1) => [topics]
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index error_code timestamp offset
 *         partition_index => INT32
 *         error_code => INT16
 *         timestamp => INT64
 *         offset => INT64
 *   ListOffsets Response (Version: 2-3) => throttle_time_ms [topics]
 *     throttle_time_ms => INT32
 *   ListOffsets Request (Version: 4-5) => replica_id isolation_level [topics]
 *       partitions => partition_index current_leader_epoch timestamp
 *         current_leader_epoch => INT32      not checked: Metadata answers leader epoch -1 (unknown)
 *   ListOffsets Response (Version: 4-5) => throttle_time_ms [topics]
 *       partitions => partition_index error_code timestamp offset leader_epoch
 *         leader_epoch => INT32              -1 (unknown)
 *   ListOffsets (Version: 6) => as v5, flexible (compact strings and arrays, a TAG_BUFFER after each struct)
 *
 * v7 (KIP-734: timestamp -3, the record with the largest timestamp) is not
 * served: the log keeps each segment's largest timestamp but not the
 * offset that has it. Source: clients/src/main/resources/common/message/ListOffsets{Request,Response}.json.
 *
 * @module
 */

import { ConcordatError } from '../../errors.js';
import { AclOperation, topicAuthorized } from '../acl/index.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { answerEachPartition } from './answers.js';
import { defineApi } from './api.js';

/** A ListOffsets request body, decoded (grammar in the file header). */
export interface ListOffsetsRequest {
  /** isolation_level 1: the latest offset is the last stable offset (open transactions are not yet readable). */
  readCommitted: boolean;
  topics: { name: string; partitions: { partitionIndex: number; timestamp: number }[] }[];
}

/** One partition's answer: the offset found and its timestamp (-1, -1 when no record is that late). */
export interface ListOffsetsPartition {
  partitionIndex: number;
  errorCode: number;
  timestamp: number;
  offset: number;
}

/** A ListOffsets response body, to encode (grammar in the file header). */
export interface ListOffsetsResponse {
  topics: { name: string; partitions: ListOffsetsPartition[] }[];
}

const LATEST = -1;
const EARLIEST = -2;

/** The ListOffsets API (key 2): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const listOffsets = defineApi<ListOffsetsRequest, ListOffsetsResponse>({
  key: 2,
  name: 'ListOffsets',
  minVersion: 1,
  maxVersion: 6,
  flexibleVersion: 6,

  decode(reader, version) {
    reader.int32(); // replica_id
    // isolation_level: read_committed (1) sees the last stable offset as the latest.
    const readCommitted = version >= 2 && reader.int8() === 1;
    const topics = reader.flexArray((t) => {
      const name = t.flexString();
      const partitions = t.flexArray((p) => {
        const partitionIndex = p.int32();
        if (version >= 4) p.int32(); // current_leader_epoch
        const partition = { partitionIndex, timestamp: p.int64() };
        p.flexTags();
        return partition;
      });
      t.flexTags();
      return { name, partitions };
    });
    reader.flexTags();
    return { readCommitted, topics };
  },

  async handle(request, context) {
    const topics = await Promise.all(
      request.topics.map(async (t) => ({
        name: t.name,
        partitions: await Promise.all(t.partitions.map((p) => lookUp(context, t.name, p.partitionIndex, p.timestamp, request.readCommitted))),
      })),
    );
    return { topics };
  },

  encode(writer, version, response) {
    if (version >= 2) writer.int32(0);
    writer.flexArray(response.topics, (w, t) => {
      w.flexString(t.name).flexArray(t.partitions, (pw, p) => {
        pw.int32(p.partitionIndex).int16(p.errorCode).int64(p.timestamp).int64(p.offset);
        if (version >= 4) pw.int32(-1); // leader_epoch: unknown
        pw.flexTags();
      });
      w.flexTags();
    });
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { topics: answerEachPartition(request.topics, (p) => failed(p.partitionIndex, errorCode)) };
  },
});

async function lookUp(
  context: RequestContext,
  topic: string,
  partitionIndex: number,
  timestamp: number,
  readCommitted: boolean,
): Promise<ListOffsetsPartition> {
  const logManager = context.broker.logManager;
  if (!topicAuthorized(context, AclOperation.DESCRIBE, topic)) return failed(partitionIndex, KafkaError.TOPIC_AUTHORIZATION_FAILED);
  try {
    if (timestamp === LATEST || timestamp === EARLIEST) {
      const description = logManager.describePartition(topic, partitionIndex);
      const latest = readCommitted ? description.lastStableOffset : description.highWatermark;
      const offset = timestamp === LATEST ? latest : description.logStartOffset;
      return { partitionIndex, errorCode: KafkaError.NONE, timestamp: -1, offset };
    }
    if (timestamp < 0) return failed(partitionIndex, KafkaError.INVALID_REQUEST);
    const found = await logManager.offsetForTimestamp(topic, partitionIndex, timestamp);
    if (found === null) return { partitionIndex, errorCode: KafkaError.NONE, timestamp: -1, offset: -1 };
    return { partitionIndex, errorCode: KafkaError.NONE, timestamp: found.timestampMs, offset: found.offset };
  } catch (error) {
    if (!(error instanceof ConcordatError)) throw error;
    return failed(partitionIndex, kafkaErrorCodeOf(error));
  }
}

function failed(partitionIndex: number, errorCode: number): ListOffsetsPartition {
  return { partitionIndex, errorCode, timestamp: -1, offset: -1 };
}
