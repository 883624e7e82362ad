import { ConcordatError, ErrorCode } from '../../errors.js';

/**
 * Kafka's error codes: the one table that maps Kafka's error names (which
 * Concordat also uses as {@link ErrorCode} values where a condition has one)
 * to the INT16 codes on the wire.
 * Source: https://kafka.apache.org/protocol#protocol_error_codes
 */
export const KafkaError = {
  UNKNOWN_SERVER_ERROR: -1,
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  INVALID_FETCH_SIZE: 4,
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_OR_FOLLOWER: 6,
  REQUEST_TIMED_OUT: 7,
  BROKER_NOT_AVAILABLE: 8,
  REPLICA_NOT_AVAILABLE: 9,
  MESSAGE_TOO_LARGE: 10,
  STALE_CONTROLLER_EPOCH: 11,
  OFFSET_METADATA_TOO_LARGE: 12,
  NETWORK_EXCEPTION: 13,
  COORDINATOR_LOAD_IN_PROGRESS: 14,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  INVALID_TOPIC_EXCEPTION: 17,
  RECORD_LIST_TOO_LARGE: 18,
  NOT_ENOUGH_REPLICAS: 19,
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: 20,
  INVALID_REQUIRED_ACKS: 21,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  INVALID_GROUP_ID: 24,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
  INVALID_COMMIT_OFFSET_SIZE: 28,
  TOPIC_AUTHORIZATION_FAILED: 29,
  GROUP_AUTHORIZATION_FAILED: 30,
  CLUSTER_AUTHORIZATION_FAILED: 31,
  INVALID_TIMESTAMP: 32,
  UNSUPPORTED_SASL_MECHANISM: 33,
  ILLEGAL_SASL_STATE: 34,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REPLICATION_FACTOR: 38,
  INVALID_REPLICA_ASSIGNMENT: 39,
  INVALID_CONFIG: 40,
  NOT_CONTROLLER: 41,
  INVALID_REQUEST: 42,
  UNSUPPORTED_FOR_MESSAGE_FORMAT: 43,
  POLICY_VIOLATION: 44,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  DUPLICATE_SEQUENCE_NUMBER: 46,
  INVALID_PRODUCER_EPOCH: 47,
  INVALID_TXN_STATE: 48,
  INVALID_PRODUCER_ID_MAPPING: 49,
  INVALID_TRANSACTION_TIMEOUT: 50,
  CONCURRENT_TRANSACTIONS: 51,
  TRANSACTION_COORDINATOR_FENCED: 52,
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 53,
  SECURITY_DISABLED: 54,
  OPERATION_NOT_ATTEMPTED: 55,
  KAFKA_STORAGE_ERROR: 56,
  LOG_DIR_NOT_FOUND: 57,
  SASL_AUTHENTICATION_FAILED: 58,
  UNKNOWN_PRODUCER_ID: 59,
  REASSIGNMENT_IN_PROGRESS: 60,
  NON_EMPTY_GROUP: 68,
  GROUP_ID_NOT_FOUND: 69,
  FETCH_SESSION_ID_NOT_FOUND: 70,
  INVALID_FETCH_SESSION_EPOCH: 71,
  TOPIC_DELETION_DISABLED: 73,
  FENCED_LEADER_EPOCH: 74,
  UNKNOWN_LEADER_EPOCH: 75,
  UNSUPPORTED_COMPRESSION_TYPE: 76,
  OFFSET_NOT_AVAILABLE: 78,
  MEMBER_ID_REQUIRED: 79,
  GROUP_MAX_SIZE_REACHED: 81,
  FENCED_INSTANCE_ID: 82,
  GROUP_SUBSCRIBED_TO_TOPIC: 86,
  INVALID_RECORD: 87,
  UNSTABLE_OFFSET_COMMIT: 88,
  THROTTLING_QUOTA_EXCEEDED: 89,
  PRODUCER_FENCED: 90,
} as const;

/** A Kafka error name, e.g. `NOT_LEADER_OR_FOLLOWER`. */
export type KafkaErrorName = keyof typeof KafkaError;

/**
 * Concordat codes with no Kafka name of their own, and the Kafka error a
 * client is shown instead (chosen so the client's reaction is the right one).
 * LIMIT_EXCEEDED depends on the limit: see {@link limitExceeded}.
 */
const CONCORDAT_ONLY: Partial<Record<ErrorCode, KafkaErrorName>> = {
  // Only a name, no error to look at (per-partition results): a bound the request broke; final.
  [ErrorCode.LIMIT_EXCEEDED]: 'POLICY_VIOLATION',
  // Storage failures are KAFKA_STORAGE_ERROR to a client: retriable elsewhere, nothing to fix in the request.
  [ErrorCode.STORAGE_CORRUPT]: 'KAFKA_STORAGE_ERROR',
  // The log is closing with the broker: the client should retry after reconnecting.
  [ErrorCode.LOG_CLOSED]: 'NOT_LEADER_OR_FOLLOWER',
};

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

const BY_CODE = new Map<number, KafkaErrorName>((Object.entries(KafkaError) as [KafkaErrorName, number][]).map(([name, code]) => [code, name]));

/** The Kafka name of a numeric error code (`UNKNOWN_SERVER_ERROR` for codes not in the table). */
export function kafkaErrorName(code: number): KafkaErrorName {
  return BY_CODE.get(code) ?? 'UNKNOWN_SERVER_ERROR';
}

/** Whether `name` is one of Kafka's error names. */
export function isKafkaErrorName(name: string): name is KafkaErrorName {
  return Object.hasOwn(KafkaError, name);
}

/** The INT16 code for an {@link ErrorCode} reported in a result (null: no error). */
export function kafkaErrorCodeOfName(code: ErrorCode | null): number {
  if (code === null) return KafkaError.NONE;
  if (isKafkaErrorName(code)) return KafkaError[code];
  const alias = CONCORDAT_ONLY[code];
  return alias === undefined ? KafkaError.UNKNOWN_SERVER_ERROR : KafkaError[alias];
}

/**
 * The INT16 error code to send for a thrown value: a ConcordatError whose
 * code is a Kafka name maps directly, LIMIT_EXCEEDED by its limit
 * ({@link limitExceeded}), the other Concordat-only codes through
 * {@link CONCORDAT_ONLY}, anything else is UNKNOWN_SERVER_ERROR (-1).
 */
export function kafkaErrorCodeOf(error: unknown): number {
  if (!(error instanceof ConcordatError)) return KafkaError.UNKNOWN_SERVER_ERROR;
  if (error.code === ErrorCode.LIMIT_EXCEEDED) return KafkaError[limitExceeded(error)];
  return kafkaErrorCodeOfName(error.code);
}

/**
 * {@link kafkaErrorCodeOf} for the transaction APIs at the versions this
 * broker serves, all older than KIP-588's: PRODUCER_FENCED (90) is sent as
 * INVALID_PRODUCER_EPOCH (47), as Kafka's API layer does for them. Both
 * librdkafka and kafkajs treat 47 on these APIs as "this producer is fenced".
 */
export function transactionErrorCodeOf(error: unknown): number {
  const code = kafkaErrorCodeOf(error);
  return code === KafkaError.PRODUCER_FENCED ? KafkaError.INVALID_PRODUCER_EPOCH : code;
}

/** {@link kafkaErrorCodeOfName} with the mapping of {@link transactionErrorCodeOf}. */
export function transactionErrorCodeOfName(code: ErrorCode | null): number {
  const wire = kafkaErrorCodeOfName(code);
  return wire === KafkaError.PRODUCER_FENCED ? KafkaError.INVALID_PRODUCER_EPOCH : wire;
}
