import { ConcordatError, ERROR_CODES, ErrorCode, KafkaError, type KafkaErrorName } from '../../errors.js';

/**
 * The broker's side of the error tables: which Kafka error number a
 * Concordat error is answered with. Kafka's numbers live in one table,
 * `src/kafka-errors.ts` (re-exported here for the broker's APIs); each
 * Concordat code names its Kafka error in `src/error-codes.ts` (its own
 * name where Kafka has the condition, another error a client reacts to
 * rightly where it has not: LOG_CLOSED is NOT_LEADER_OR_FOLLOWER). Only
 * LIMIT_EXCEEDED is decided per error, by its limit and retriable flag.
 *
 * @module
 */

export { KAFKA_ERRORS, KafkaError, isKafkaErrorName, kafkaErrorName, type KafkaErrorName, type KafkaErrorSpec } from '../../errors.js';

/**
 * The log's LIMIT_EXCEEDED, by the limit it names (`context.limit`) and its
 * retriable flag. A limit the log marks retriable is a resource running out
 * for now — nothing was written or changed, and the same request may succeed
 * later — so the client must see an error it retries; a limit the log marks
 * final must stay final, or clients would retry forever.
 *
 * | limit | retriable | Kafka error | why |
 * |---|---|---|---|
 * | openFilesMax (EMFILE/ENFILE) | yes | KAFKA_STORAGE_ERROR (56) | a log file could not be opened: Kafka's own meaning of 56 ("Disk error when trying to access log file"). kafkajs and the Java client retry it; librdkafka refreshes metadata and retries, and counts a produced batch as not persisted — which is true. kafka-python 2.0.2 predates 56: its consumer logs it and fetches again, its producer fails the batch (it retries nothing by default anyway). |
 * | appendQueueBytesMax | yes | KAFKA_STORAGE_ERROR (56) | the partition's write queue is full; nothing was appended. Not REQUEST_TIMED_OUT (librdkafka would count the batch as possibly persisted), not NOT_ENOUGH_REPLICAS (retriable, but it blames replication), not THROTTLING_QUOTA_EXCEEDED (clients honour it on admin APIs only). |
 * | readWaitersMax | yes | KAFKA_STORAGE_ERROR (56) | too many long polls wait on the partition; every client fetches again (NOT_ENOUGH_REPLICAS would make kafka-python's consumer raise). |
 * | groups.groupsMax | yes | COORDINATOR_NOT_AVAILABLE (15) | JoinGroup of a new group while the coordinator holds groupsMax: every client looks the coordinator up again and rejoins after a backoff. |
 * | topicsMax, readWaitMsMax, decompressedBatchBytesMax, any other final one | no | POLICY_VIOLATION (44) | the request breaks a bound of this broker, now and on retry; CreateTopics v1+ carries the message naming the option. |
 */
const RETRIABLE_LIMITS: Readonly<Record<string, KafkaErrorName>> = {
  'groups.groupsMax': 'COORDINATOR_NOT_AVAILABLE',
};

function limitExceeded(error: ConcordatError): KafkaErrorName {
  if (!error.retriable) return 'POLICY_VIOLATION';
  const limit = error.context.limit;
  return (typeof limit === 'string' ? RETRIABLE_LIMITS[limit] : undefined) ?? 'KAFKA_STORAGE_ERROR';
}

/** The INT16 code for an {@link ErrorCode} reported in a result (null: no error): its `kafka` in ERROR_CODES, else UNKNOWN_SERVER_ERROR (-1). */
export function kafkaErrorCodeOfName(code: ErrorCode | null): number {
  if (code === null) return KafkaError.NONE;
  const kafka = ERROR_CODES[code].kafka;
  return kafka === undefined ? KafkaError.UNKNOWN_SERVER_ERROR : KafkaError[kafka];
}

/**
 * The INT16 error code to send for a thrown value: a ConcordatError's
 * code through {@link kafkaErrorCodeOfName}, but LIMIT_EXCEEDED by its limit
 * and flag ({@link limitExceeded}); anything else is UNKNOWN_SERVER_ERROR (-1).
 */
export function kafkaErrorCodeOf(error: unknown): number {
  if (!(error instanceof ConcordatError)) return KafkaError.UNKNOWN_SERVER_ERROR;
  if (error.code === ErrorCode.LIMIT_EXCEEDED) return KafkaError[limitExceeded(error)];
  return kafkaErrorCodeOfName(error.code);
}

/**
 * {@link kafkaErrorCodeOf} for the transaction APIs (and Produce): at a
 * version older than KIP-588's (`producerFencedSupported` false: InitProducerId
 * v0-v3, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v0-v1, TxnOffsetCommit
 * v0-v2, every Produce) PRODUCER_FENCED (90) is sent as INVALID_PRODUCER_EPOCH
 * (47), as Kafka's API layer does. Both librdkafka and kafkajs treat 47 on
 * these APIs as "this producer is fenced".
 */
export function transactionErrorCodeOf(error: unknown, producerFencedSupported = false): number {
  const code = kafkaErrorCodeOf(error);
  return code === KafkaError.PRODUCER_FENCED && !producerFencedSupported ? KafkaError.INVALID_PRODUCER_EPOCH : code;
}

/** {@link kafkaErrorCodeOfName} with the mapping of {@link transactionErrorCodeOf} (`producerFencedSupported` as there). */
export function transactionErrorCodeOfName(code: ErrorCode | null, producerFencedSupported = false): number {
  const wire = kafkaErrorCodeOfName(code);
  return wire === KafkaError.PRODUCER_FENCED && !producerFencedSupported ? KafkaError.INVALID_PRODUCER_EPOCH : wire;
}
