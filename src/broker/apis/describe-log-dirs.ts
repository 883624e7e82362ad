/**
 * DescribeLogDirs (key 35), v0-v1: the broker's log directories and the
 * size of each partition in them. Kafka's own tools send it (the Java
 * AdminClient's `describeLogDirs`, kafka-log-dirs.sh); kafkajs 2.2.4,
 * librdkafka 2.0.2 and kafka-python 2.0.2 do not have it.
 *
 *   DescribeLogDirs Request (Version: 0-1) => [topics]
 *     topics => topic [partitions]          nullable array: null asks for every partition
 *       topic => STRING
 *       partitions => INT32
 *
 *   DescribeLogDirs Response (Version: 0-1) => throttle_time_ms [results]
 *     throttle_time_ms => INT32
 *     results => error_code log_dir [topics]
 *       error_code => INT16
 *       log_dir => STRING
 *       topics => name [partitions]
 *         name => STRING
 *         partitions => partition_index partition_size offset_lag is_future_key
 *           partition_index => INT32
 *           partition_size => INT64         bytes of its segments
 *           offset_lag => INT64             0: this is the one replica
 *           is_future_key => BOOLEAN        false: no replica is being moved
 *
 * One log directory, the log's `dataDir`. Partitions that do not exist are
 * left out, as Kafka leaves out those a directory does not hold.
 *
 * @module
 */

import { AclOperation, clusterAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A DescribeLogDirs request body, decoded (grammar in the file header). */
export interface DescribeLogDirsRequest {
  topics: { topic: string; partitions: number[] }[] | null;
}

/** A DescribeLogDirs response body, to encode (grammar in the file header). */
export interface DescribeLogDirsResponse {
  results: {
    errorCode: number;
    logDir: string;
    topics: { name: string; partitions: { partitionIndex: number; partitionSize: number }[] }[];
  }[];
}

/** The DescribeLogDirs API (key 35): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const describeLogDirs = defineApi<DescribeLogDirsRequest, DescribeLogDirsResponse>({
  key: 35,
  name: 'DescribeLogDirs',
  minVersion: 0,
  maxVersion: 1,
  flexibleVersion: null,

  decode(reader) {
    return { topics: reader.nullableArray((t) => ({ topic: t.string(), partitions: t.array((p) => p.int32()) })) };
  },

  handle(request, context) {
    const logManager = context.broker.logManager;
    // ACLs: Describe on the cluster; v0-v1 have no error field, so Kafka answers an empty list.
    if (!clusterAuthorized(context, AclOperation.DESCRIBE)) return { results: [] };
    const wanted = request.topics ?? logManager.listTopics().map((topic) => ({ topic, partitions: null }));
    const topics: DescribeLogDirsResponse['results'][number]['topics'] = [];
    for (const { topic, partitions } of wanted) {
      const count = logManager.partitionCount(topic);
      if (count === undefined) continue;
      const indexes = (partitions ?? Array.from({ length: count }, (_, i) => i)).filter((p) => p >= 0 && p < count);
      if (indexes.length === 0) continue;
      topics.push({ name: topic, partitions: indexes.map((p) => ({ partitionIndex: p, partitionSize: logManager.describePartition(topic, p).sizeBytes })) });
    }
    return { results: [{ errorCode: KafkaError.NONE, logDir: logManager.options.dataDir, topics }] };
  },

  encode(writer, _version, response) {
    writer.int32(0);
    writer.array(response.results, (w, r) => {
      w.int16(r.errorCode).string(r.logDir);
      w.array(r.topics, (tw, t) => tw.string(t.name).array(t.partitions, (pw, p) => pw.int32(p.partitionIndex).int64(p.partitionSize).int64(0).boolean(false)));
    });
  },

  errorResponse(_request, errorCode, context) {
    return { results: [{ errorCode, logDir: context.broker.logManager.options.dataDir, topics: [] }] };
  },
});
