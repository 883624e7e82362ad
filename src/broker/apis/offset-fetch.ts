/**
 * OffsetFetch (key 9), v1-v4: a group's committed offsets; -1 with empty
 * metadata where none is committed.
 *
 *   OffsetFetch Request (Version: 1) => group_id [topics]
 *     group_id => STRING
 *     topics => name [partition_indexes]
 *       name => STRING
 *       partition_indexes => INT32
 *   OffsetFetch Request (Version: 2-4) => group_id [topics]     null topics: every committed offset
 *
 *   OffsetFetch Response (Version: 1) => [topics]
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index committed_offset metadata error_code
 *         partition_index => INT32
 *         committed_offset => INT64
 *         metadata => NULLABLE_STRING
 *         error_code => INT16
 *   OffsetFetch Response (Version: 2) => [topics] error_code
 *     error_code => INT16
 *   OffsetFetch Response (Version: 3-4) => throttle_time_ms [topics] error_code
 *     throttle_time_ms => INT32
 *
 * @module
 */

import { AclOperation, groupAuthorized, topicAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf, kafkaErrorCodeOfName } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** An OffsetFetch request body, decoded (grammar in the file header). */
export interface OffsetFetchRequest {
  groupId: string;
  topics: { name: string; partitionIndexes: number[] }[] | null;
}

/** One partition's committed offset (-1 when none) and metadata. */
export interface OffsetFetchPartition {
  partitionIndex: number;
  committedOffset: number;
  metadata: string | null;
  errorCode: number;
}

/** An OffsetFetch response body, to encode (grammar in the file header). */
export interface OffsetFetchResponse {
  topics: { name: string; partitions: OffsetFetchPartition[] }[];
  errorCode: number;
}

/** The OffsetFetch API (key 9): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const offsetFetch = defineApi<OffsetFetchRequest, OffsetFetchResponse>({
  key: 9,
  name: 'OffsetFetch',
  minVersion: 1,
  maxVersion: 4,
  flexibleVersion: null,

  decode(reader, version) {
    const groupId = reader.string();
    const topic = (t: typeof reader) => ({ name: t.string(), partitionIndexes: t.array((p) => p.int32()) });
    const topics = version >= 2 ? reader.nullableArray(topic) : reader.array(topic);
    return { groupId, topics };
  },

  async handle(request, context) {
    // ACLs: Describe on the group (else GROUP_AUTHORIZATION_FAILED); Describe on each topic named (else
    // TOPIC_AUTHORIZATION_FAILED); every topic (null): those it may not Describe are left out.
    if (!groupAuthorized(context, AclOperation.DESCRIBE, request.groupId)) return this.errorResponse(request, KafkaError.GROUP_AUTHORIZATION_FAILED, context);
    const describable = (topic: string) => topicAuthorized(context, AclOperation.DESCRIBE, topic);
    const refused = (request.topics ?? [])
      .filter((t) => !describable(t.name))
      .map((t) => ({
        name: t.name,
        partitions: t.partitionIndexes.map((partitionIndex) => ({
          partitionIndex,
          committedOffset: -1,
          metadata: '',
          errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED,
        })),
      }));
    try {
      const result = await context.broker.log.groups.fetchOffsets({
        groupId: request.groupId,
        topics: request.topics?.filter((t) => describable(t.name)).map((t) => ({ topic: t.name, partitions: t.partitionIndexes })) ?? null,
      });
      const topics = result.topics
        .filter((t) => describable(t.topic))
        .map((t) => ({
          name: t.topic,
          partitions: t.partitions.map((p) => ({
            partitionIndex: p.partition,
            committedOffset: p.offset,
            metadata: p.metadata,
            errorCode: kafkaErrorCodeOfName(p.errorCode),
          })),
        }));
      return { topics: [...topics, ...refused], errorCode: KafkaError.NONE };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return this.errorResponse(request, kafkaErrorCodeOf(error), context);
    }
  },

  encode(writer, version, response) {
    if (version >= 3) writer.int32(0);
    writer.array(response.topics, (w, t) => {
      w.string(t.name).array(t.partitions, (pw, p) => {
        pw.int32(p.partitionIndex).int64(p.committedOffset).nullableString(p.metadata).int16(p.errorCode);
      });
    });
    if (version >= 2) writer.int16(response.errorCode);
  },

  errorResponse(request, errorCode) {
    // v1 has no top-level error: the error goes on every partition asked for.
    return {
      topics: (request.topics ?? []).map((t) => ({
        name: t.name,
        partitions: t.partitionIndexes.map((partitionIndex) => ({ partitionIndex, committedOffset: -1, metadata: '', errorCode })),
      })),
      errorCode,
    };
  },
});
