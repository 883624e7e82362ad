/**
 * OffsetFetch (key 9), v1-v9 (v6+ flexible, KIP-482): a group's committed
 * offsets; -1 with empty metadata where none is committed.
 *
 *   OffsetFetch Request (Version: 1) => group_id [topics]
 *     group_id => STRING
 *     topics => name [partition_indexes]
 *       name => STRING
 *       partition_indexes => INT32
 *   OffsetFetch Request (Version: 2-5) => group_id [topics]     null topics: every committed offset
 *   OffsetFetch Request (Version: 6) => as v5, flexible (compact strings and arrays, a TAG_BUFFER after each struct)
 *   OffsetFetch Request (Version: 7) => group_id [topics] require_stable TAG_BUFFER
 *     require_stable => BOOLEAN
 *   OffsetFetch Request (Version: 8-9) => [groups] require_stable TAG_BUFFER
 *     groups => group_id [member_id member_epoch] [topics] TAG_BUFFER     member_id, member_epoch: v9
 *       member_id => COMPACT_NULLABLE_STRING     KIP-848 consumer groups (not served): ignored
 *       member_epoch => INT32
 *       topics => name [partition_indexes] TAG_BUFFER                     null: every committed offset
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
 *   OffsetFetch Response (Version: 5-7) => throttle_time_ms [topics] error_code    (v6+ flexible)
 *       partitions => partition_index committed_offset committed_leader_epoch metadata error_code
 *         committed_leader_epoch => INT32
 *   OffsetFetch Response (Version: 8-9) => throttle_time_ms [groups] TAG_BUFFER
 *     groups => group_id [topics] error_code TAG_BUFFER
 *       topics => name [partitions] TAG_BUFFER
 *         partitions => partition_index committed_offset committed_leader_epoch metadata error_code TAG_BUFFER
 *
 * require_stable (KIP-447; librdkafka sets it for read_committed consumers):
 * a partition whose offset an open transaction committed but has not yet
 * completed answers UNSTABLE_OFFSET_COMMIT, which clients retry, rather than
 * the offset from before the transaction.
 * Source: clients/src/main/resources/common/message/OffsetFetch{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, groupAuthorized, topicAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf, kafkaErrorCodeOfName } from '../codec/error-codes.js';
import type { Reader } from '../codec/reader.js';
import type { Writer } from '../codec/writer.js';
import type { RequestContext } from '../context.js';
import { defineApi } from './api.js';

/** The topics and partitions asked for in one group; null: every committed offset. */
export type OffsetFetchTopics = { name: string; partitionIndexes: number[] }[] | null;

/** An OffsetFetch request body, decoded (grammar in the file header); before v8 there is exactly one group. */
export interface OffsetFetchRequest {
  groups: { groupId: string; topics: OffsetFetchTopics }[];
  /** v7+: answer UNSTABLE_OFFSET_COMMIT where a transaction's offset commit is pending. */
  requireStable: boolean;
}

/** One partition's committed offset (-1 when none), leader epoch (-1 when none) and metadata. */
export interface OffsetFetchPartition {
  partitionIndex: number;
  committedOffset: number;
  committedLeaderEpoch: number;
  metadata: string | null;
  errorCode: number;
}

/** One group's answer: its committed offsets and a group-level error. */
export interface OffsetFetchGroup {
  groupId: string;
  topics: { name: string; partitions: OffsetFetchPartition[] }[];
  errorCode: number;
}

/** An OffsetFetch response body, to encode (grammar in the file header); before v8 the one group's fields. */
export interface OffsetFetchResponse {
  groups: OffsetFetchGroup[];
}

/** The OffsetFetch API (key 9): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const offsetFetch = defineApi<OffsetFetchRequest, OffsetFetchResponse>({
  key: 9,
  name: 'OffsetFetch',
  minVersion: 1,
  maxVersion: 9,
  flexibleVersion: 6,

  decode(reader, version) {
    if (version >= 8) {
      const groups = reader.flexArray((g) => {
        const groupId = g.flexString();
        if (version >= 9) {
          g.flexNullableString(); // member_id
          g.int32(); // member_epoch
        }
        const topics = g.flexNullableArray(readTopic);
        g.flexTags();
        return { groupId, topics };
      });
      const requireStable = reader.boolean();
      reader.flexTags();
      return { groups, requireStable };
    }
    const groupId = reader.flexString();
    const topics = version >= 2 ? reader.flexNullableArray(readTopic) : reader.array(readTopic);
    const requireStable = version >= 7 ? reader.boolean() : false;
    reader.flexTags();
    return { groups: [{ groupId, topics }], requireStable };
  },

  async handle(request, context) {
    // One group at a time: a request rarely names many, and each is a lookup in memory.
    const groups: OffsetFetchGroup[] = [];
    for (const group of request.groups) groups.push(await fetchGroup(group.groupId, group.topics, request.requireStable, context));
    return { groups };
  },

  encode(writer, version, response) {
    if (version >= 3) writer.int32(0);
    if (version >= 8) {
      writer.flexArray(response.groups, (w, group) => {
        w.flexString(group.groupId);
        writeTopics(w, version, group);
        w.int16(group.errorCode).flexTags();
      });
      writer.flexTags();
      return;
    }
    const group = response.groups[0]!;
    writeTopics(writer, version, group);
    if (version >= 2) writer.int16(group.errorCode);
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { groups: request.groups.map((group) => failedGroup(group.groupId, group.topics, errorCode)) };
  },
});

function readTopic(t: Reader): { name: string; partitionIndexes: number[] } {
  const topic = { name: t.flexString(), partitionIndexes: t.flexArray((p) => p.int32()) };
  t.flexTags();
  return topic;
}

function writeTopics(writer: Writer, version: number, group: OffsetFetchGroup): void {
  writer.flexArray(group.topics, (w, t) => {
    w.flexString(t.name).flexArray(t.partitions, (pw, p) => {
      pw.int32(p.partitionIndex).int64(p.committedOffset);
      if (version >= 5) pw.int32(p.committedLeaderEpoch);
      pw.flexNullableString(p.metadata).int16(p.errorCode).flexTags();
    });
    w.flexTags();
  });
}

/** v1 has no group-level error: the error also goes on every partition asked for. */
function failedGroup(groupId: string, topics: OffsetFetchTopics, errorCode: number): OffsetFetchGroup {
  return {
    groupId,
    topics: (topics ?? []).map((t) => ({
      name: t.name,
      partitions: t.partitionIndexes.map((partitionIndex) => ({ partitionIndex, committedOffset: -1, committedLeaderEpoch: -1, metadata: '', errorCode })),
    })),
    errorCode,
  };
}

async function fetchGroup(groupId: string, topics: OffsetFetchTopics, requireStable: boolean, context: RequestContext): Promise<OffsetFetchGroup> {
  // ACLs: Describe on the group (else GROUP_AUTHORIZATION_FAILED); Describe on each topic named (else
  // TOPIC_AUTHORIZATION_FAILED); every topic (null): those it may not Describe are left out.
  if (!groupAuthorized(context, AclOperation.DESCRIBE, groupId)) return failedGroup(groupId, topics, KafkaError.GROUP_AUTHORIZATION_FAILED);
  const describable = (topic: string): boolean => topicAuthorized(context, AclOperation.DESCRIBE, topic);
  const refused = (topics ?? [])
    .filter((t) => !describable(t.name))
    .map((t) => ({
      name: t.name,
      partitions: t.partitionIndexes.map((partitionIndex) => ({
        partitionIndex,
        committedOffset: -1,
        committedLeaderEpoch: -1,
        metadata: '',
        errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED,
      })),
    }));
  try {
    const result = await context.broker.logManager.groups.fetchOffsets({
      groupId,
      topics: topics?.filter((t) => describable(t.name)).map((t) => ({ topic: t.name, partitions: t.partitionIndexes })) ?? null,
    });
    const unstable = requireStable ? context.broker.logManager.transactions.pendingOffsetPartitions(groupId) : new Set<string>();
    const fetched = result.topics
      .filter((t) => describable(t.topic))
      .map((t) => ({
        name: t.topic,
        partitions: t.partitions.map((p) =>
          unstable.has(`${t.topic}\0${p.partition}`)
            ? { partitionIndex: p.partition, committedOffset: -1, committedLeaderEpoch: -1, metadata: '', errorCode: KafkaError.UNSTABLE_OFFSET_COMMIT }
            : {
                partitionIndex: p.partition,
                committedOffset: p.offset,
                committedLeaderEpoch: p.leaderEpoch,
                metadata: p.metadata,
                errorCode: kafkaErrorCodeOfName(p.errorCode),
              },
        ),
      }));
    return { groupId, topics: [...fetched, ...refused], errorCode: KafkaError.NONE };
  } catch (error) {
    if (!(error instanceof ConcordatError)) throw error;
    return failedGroup(groupId, topics, kafkaErrorCodeOf(error));
  }
}
