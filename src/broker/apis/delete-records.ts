/**
 * DeleteRecords (key 21), v0-v2 (v2 flexible, KIP-482): moves partitions' log start offsets
 * forward. kafkajs 2.2.4 (`admin.deleteTopicRecords`) sends v0-v1,
 * librdkafka (`rd_kafka_DeleteRecords`) v0-v1.
 *
 *   DeleteRecords Request (Version: 0-1) => [topics] timeout_ms
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index offset
 *         partition_index => INT32
 *         offset => INT64                   delete the records before it; -1: the high watermark
 *     timeout_ms => INT32
 *
 *   DeleteRecords Response (Version: 0-1) => throttle_time_ms [topics]
 *     throttle_time_ms => INT32
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index low_watermark error_code
 *         partition_index => INT32
 *         low_watermark => INT64            the log start offset after the call; -1 on error
 *         error_code => INT16
 *
 * The new log start offset is durable before the answer
 * (LogManager.deleteRecords); a Fetch below it gets OFFSET_OUT_OF_RANGE,
 * ListOffsets' earliest answers it, and segments wholly below it are
 * deleted. An offset at or below the current start changes nothing and
 * answers the current start, as Kafka's. Errors: OFFSET_OUT_OF_RANGE
 * (above the high watermark), UNKNOWN_TOPIC_OR_PARTITION.
 *
 * v2 is v1, flexible (compact strings and arrays, a TAG_BUFFER after each struct).
 * Source: clients/src/main/resources/common/message/DeleteRecords{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, topicAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { answerEachPartition } from './answers.js';
import { defineApi } from './api.js';

/** A DeleteRecords request body, decoded (grammar in the file header). */
export interface DeleteRecordsRequest {
  topics: { name: string; partitions: { partitionIndex: number; offset: number }[] }[];
  timeoutMs: number;
}

/** One partition's result in a DeleteRecords response. */
export interface DeleteRecordsPartitionResult {
  partitionIndex: number;
  lowWatermark: number;
  errorCode: number;
}

/** A DeleteRecords response body, to encode (grammar in the file header). */
export interface DeleteRecordsResponse {
  topics: { name: string; partitions: DeleteRecordsPartitionResult[] }[];
}

/** The DeleteRecords API (key 21): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const deleteRecords = defineApi<DeleteRecordsRequest, DeleteRecordsResponse>({
  key: 21,
  name: 'DeleteRecords',
  minVersion: 0,
  maxVersion: 2,
  flexibleVersion: 2,

  decode(reader) {
    const topics = reader.flexArray((t) => {
      const name = t.flexString();
      const partitions = t.flexArray((p) => {
        const partition = { partitionIndex: p.int32(), offset: p.int64() };
        p.flexTags();
        return partition;
      });
      t.flexTags();
      return { name, partitions };
    });
    const request = { topics, timeoutMs: reader.int32() };
    reader.flexTags();
    return request;
  },

  async handle(request, context) {
    const topics: DeleteRecordsResponse['topics'] = [];
    for (const topic of request.topics) {
      const partitions: DeleteRecordsPartitionResult[] = [];
      for (const p of topic.partitions) partitions.push(await deleteOne(topic.name, p.partitionIndex, p.offset, context));
      topics.push({ name: topic.name, partitions });
    }
    return { topics };
  },

  encode(writer, _version, response) {
    writer.int32(0);
    writer.flexArray(response.topics, (w, topic) => {
      w.flexString(topic.name).flexArray(topic.partitions, (pw, p) => pw.int32(p.partitionIndex).int64(p.lowWatermark).int16(p.errorCode).flexTags());
      w.flexTags();
    });
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { topics: answerEachPartition(request.topics, (p) => ({ partitionIndex: p.partitionIndex, lowWatermark: -1, errorCode })) };
  },
});

async function deleteOne(topic: string, partition: number, offset: number, context: RequestContext): Promise<DeleteRecordsPartitionResult> {
  if (!topicAuthorized(context, AclOperation.DELETE, topic))
    return { partitionIndex: partition, lowWatermark: -1, errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED };
  try {
    const lowWatermark = await context.broker.logManager.deleteRecords(topic, partition, offset);
    return { partitionIndex: partition, lowWatermark, errorCode: KafkaError.NONE };
  } catch (error) {
    if (!(error instanceof ConcordatError)) throw error;
    return { partitionIndex: partition, lowWatermark: -1, errorCode: kafkaErrorCodeOf(error) };
  }
}
