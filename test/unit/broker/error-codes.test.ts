import { describe, expect, it } from 'vitest';
import { KafkaError, kafkaErrorCodeOf, kafkaErrorCodeOfName } from '../../../src/broker/codec/error-codes.js';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';

/**
 * The log's LIMIT_EXCEEDED on the wire: a resource exhausted for now must
 * reach clients as an error they retry, a bound the request breaks as one
 * they do not (the table in src/broker/codec/error-codes.ts says why each).
 */
const limit = (name: string, retriable: boolean) =>
  new ConcordatError(`${name} reached`, { code: ErrorCode.LIMIT_EXCEEDED, retriable, context: { limit: name } });

describe('LIMIT_EXCEEDED', () => {
  it('retriable limits become retriable Kafka errors', () => {
    expect(kafkaErrorCodeOf(limit('openFilesMax', true))).toBe(KafkaError.KAFKA_STORAGE_ERROR);
    expect(kafkaErrorCodeOf(limit('appendQueueBytesMax', true))).toBe(KafkaError.KAFKA_STORAGE_ERROR);
    expect(kafkaErrorCodeOf(limit('readWaitersMax', true))).toBe(KafkaError.KAFKA_STORAGE_ERROR);
    expect(kafkaErrorCodeOf(limit('groups.groupsMax', true))).toBe(KafkaError.COORDINATOR_NOT_AVAILABLE);
  });

  it('final limits stay final', () => {
    expect(kafkaErrorCodeOf(limit('topicsMax', false))).toBe(KafkaError.POLICY_VIOLATION);
    expect(kafkaErrorCodeOf(limit('readWaitMsMax', false))).toBe(KafkaError.POLICY_VIOLATION);
    expect(kafkaErrorCodeOf(limit('decompressedBatchBytesMax', false))).toBe(KafkaError.POLICY_VIOLATION);
    // A limit that names nothing, or only a name with no flag to read: final.
    expect(kafkaErrorCodeOf(new ConcordatError('limit', { code: ErrorCode.LIMIT_EXCEEDED }))).toBe(KafkaError.POLICY_VIOLATION);
    expect(kafkaErrorCodeOfName(ErrorCode.LIMIT_EXCEEDED)).toBe(KafkaError.POLICY_VIOLATION);
  });

  it('other codes keep their mapping', () => {
    expect(kafkaErrorCodeOf(new ConcordatError('gone', { code: ErrorCode.LOG_CLOSED, retriable: true }))).toBe(KafkaError.NOT_LEADER_OR_FOLLOWER);
    expect(kafkaErrorCodeOf(new ConcordatError('disk', { code: ErrorCode.KAFKA_STORAGE_ERROR, retriable: true }))).toBe(KafkaError.KAFKA_STORAGE_ERROR);
    expect(kafkaErrorCodeOf(new Error('bug'))).toBe(KafkaError.UNKNOWN_SERVER_ERROR);
  });
});
