/**
 * Kafka's error table: one row per Kafka error Concordat knows, with its
 * number on the wire (INT16), whether Kafka's protocol marks it retriable,
 * and what it means, in our words. The one home of Kafka's error numbers:
 * Concordat's own codes point at a row here (`kafka` in
 * {@link ERROR_CODES}), the broker answers with these numbers
 * (`broker/codec/error-codes.ts`), and the kafka transport and the admin
 * client read kafkajs's errors through it.
 *
 * Source: the error table of Kafka's protocol guide
 * (https://kafka.apache.org/protocol#protocol_error_codes); names and
 * numbers are Kafka's, `retriable` is its "Retriable" column.
 *
 * @module
 */

/** One row of {@link KAFKA_ERRORS}. */
export interface KafkaErrorSpec {
  /** The INT16 error code on the wire. */
  readonly code: number;
  /** Whether Kafka's protocol marks the error retriable (a client may send the same request again). */
  readonly retriable: boolean;
  /** What the error means. */
  readonly message: string;
}

/** Kafka's errors by name; see the module comment. Ordered by number. */
export const KAFKA_ERRORS = {
  UNKNOWN_SERVER_ERROR: { code: -1, retriable: false, message: 'The broker failed the request for a reason it has no code for.' },
  NONE: { code: 0, retriable: false, message: 'No error.' },
  OFFSET_OUT_OF_RANGE: { code: 1, retriable: false, message: 'The offset asked for is outside the range the partition holds.' },
  CORRUPT_MESSAGE: { code: 2, retriable: true, message: 'A record batch failed its CRC, is larger than it says, or is otherwise malformed.' },
  UNKNOWN_TOPIC_OR_PARTITION: { code: 3, retriable: true, message: 'This broker holds no such topic or partition.' },
  INVALID_FETCH_SIZE: { code: 4, retriable: false, message: 'The fetch size asked for is not valid.' },
  LEADER_NOT_AVAILABLE: { code: 5, retriable: true, message: 'The partition has no leader at the moment (an election is under way).' },
  NOT_LEADER_OR_FOLLOWER: { code: 6, retriable: true, message: 'This broker is not the leader (or not a replica) of the partition.' },
  REQUEST_TIMED_OUT: { code: 7, retriable: true, message: 'The request did not complete in time.' },
  BROKER_NOT_AVAILABLE: { code: 8, retriable: false, message: 'The broker is not available.' },
  REPLICA_NOT_AVAILABLE: { code: 9, retriable: true, message: 'The replica of the partition is not available.' },
  MESSAGE_TOO_LARGE: { code: 10, retriable: false, message: 'A record or batch is larger than the broker accepts.' },
  STALE_CONTROLLER_EPOCH: { code: 11, retriable: false, message: 'The controller has moved to another broker.' },
  OFFSET_METADATA_TOO_LARGE: { code: 12, retriable: false, message: 'The metadata of an offset commit is too long.' },
  NETWORK_EXCEPTION: { code: 13, retriable: true, message: 'The connection closed before the response came.' },
  COORDINATOR_LOAD_IN_PROGRESS: { code: 14, retriable: true, message: 'The coordinator is still loading its state.' },
  COORDINATOR_NOT_AVAILABLE: { code: 15, retriable: true, message: 'The coordinator is not available.' },
  NOT_COORDINATOR: { code: 16, retriable: true, message: 'This broker is not the coordinator of the group or transactional ID.' },
  INVALID_TOPIC_EXCEPTION: { code: 17, retriable: false, message: 'The topic name is not legal, or the operation is not allowed on it.' },
  RECORD_LIST_TOO_LARGE: { code: 18, retriable: false, message: 'A batch is larger than a segment of the topic may hold.' },
  NOT_ENOUGH_REPLICAS: { code: 19, retriable: true, message: 'Fewer replicas are in sync than the topic requires; nothing was written.' },
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: { code: 20, retriable: true, message: 'The records were written, but to fewer in-sync replicas than required.' },
  INVALID_REQUIRED_ACKS: { code: 21, retriable: false, message: 'The produce request asked for an acks value the broker does not take.' },
  ILLEGAL_GENERATION: { code: 22, retriable: false, message: 'The generation of the group named in the request is not the current one.' },
  INCONSISTENT_GROUP_PROTOCOL: { code: 23, retriable: false, message: 'The member offers no protocol the group can agree on (or none at all).' },
  INVALID_GROUP_ID: { code: 24, retriable: false, message: 'The group ID is not valid.' },
  UNKNOWN_MEMBER_ID: { code: 25, retriable: false, message: 'The coordinator does not know this member of the group.' },
  INVALID_SESSION_TIMEOUT: { code: 26, retriable: false, message: 'The session timeout is outside the range the broker allows.' },
  REBALANCE_IN_PROGRESS: { code: 27, retriable: false, message: 'The group is rebalancing: the member must join again.' },
  INVALID_COMMIT_OFFSET_SIZE: { code: 28, retriable: false, message: 'The size of the committed offset data is not valid.' },
  TOPIC_AUTHORIZATION_FAILED: { code: 29, retriable: false, message: 'The principal may not do this on the topic.' },
  GROUP_AUTHORIZATION_FAILED: { code: 30, retriable: false, message: 'The principal may not do this on the group.' },
  CLUSTER_AUTHORIZATION_FAILED: { code: 31, retriable: false, message: 'The principal may not do this on the cluster.' },
  INVALID_TIMESTAMP: { code: 32, retriable: false, message: 'A record timestamp is outside the accepted range.' },
  UNSUPPORTED_SASL_MECHANISM: { code: 33, retriable: false, message: 'The broker does not offer the SASL mechanism asked for.' },
  ILLEGAL_SASL_STATE: { code: 34, retriable: false, message: 'The request is not allowed at this step of SASL authentication.' },
  UNSUPPORTED_VERSION: { code: 35, retriable: false, message: 'The broker does not serve this version of the API.' },
  TOPIC_ALREADY_EXISTS: { code: 36, retriable: false, message: 'A topic with this name exists already.' },
  INVALID_PARTITIONS: { code: 37, retriable: false, message: 'The partition count is not valid.' },
  INVALID_REPLICATION_FACTOR: { code: 38, retriable: false, message: 'The replication factor is not valid for this cluster.' },
  INVALID_REPLICA_ASSIGNMENT: { code: 39, retriable: false, message: 'The replica assignment is not valid.' },
  INVALID_CONFIG: { code: 40, retriable: false, message: 'A configuration value is not valid.' },
  NOT_CONTROLLER: { code: 41, retriable: true, message: 'This broker is not the controller of the cluster.' },
  INVALID_REQUEST: { code: 42, retriable: false, message: 'The request is malformed or not valid for this broker.' },
  UNSUPPORTED_FOR_MESSAGE_FORMAT: { code: 43, retriable: false, message: 'The record format of the topic does not support the request.' },
  POLICY_VIOLATION: { code: 44, retriable: false, message: 'The request breaks a policy (a bound) of the broker.' },
  OUT_OF_ORDER_SEQUENCE_NUMBER: { code: 45, retriable: false, message: "A producer's sequence number skips ahead of the one expected." },
  DUPLICATE_SEQUENCE_NUMBER: { code: 46, retriable: false, message: 'The batch repeats a sequence number the partition has already written.' },
  INVALID_PRODUCER_EPOCH: { code: 47, retriable: false, message: 'The producer epoch is older than the current one (the producer is fenced).' },
  INVALID_TXN_STATE: { code: 48, retriable: false, message: 'The transactional request is not valid in the transaction’s current state.' },
  INVALID_PRODUCER_ID_MAPPING: { code: 49, retriable: false, message: 'The producer ID is not the one of this transactional ID.' },
  INVALID_TRANSACTION_TIMEOUT: { code: 50, retriable: false, message: 'The transaction timeout is above what the broker allows.' },
  CONCURRENT_TRANSACTIONS: { code: 51, retriable: true, message: 'The transactional ID is still completing its previous transaction.' },
  TRANSACTION_COORDINATOR_FENCED: { code: 52, retriable: false, message: 'A newer transaction coordinator has taken over this producer.' },
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: { code: 53, retriable: false, message: 'The principal may not use this transactional ID.' },
  SECURITY_DISABLED: { code: 54, retriable: false, message: 'Security features are turned off on the broker.' },
  OPERATION_NOT_ATTEMPTED: { code: 55, retriable: false, message: 'The broker did not try this part of a batched request because another part failed.' },
  KAFKA_STORAGE_ERROR: { code: 56, retriable: true, message: 'A disk error occurred while accessing a log file.' },
  LOG_DIR_NOT_FOUND: { code: 57, retriable: false, message: 'The log directory named is not one of the broker’s.' },
  SASL_AUTHENTICATION_FAILED: { code: 58, retriable: false, message: 'SASL authentication failed.' },
  UNKNOWN_PRODUCER_ID: { code: 59, retriable: false, message: 'The broker no longer holds state for this producer ID.' },
  REASSIGNMENT_IN_PROGRESS: { code: 60, retriable: false, message: 'A partition reassignment is under way.' },
  NON_EMPTY_GROUP: { code: 68, retriable: false, message: 'The group still has members.' },
  GROUP_ID_NOT_FOUND: { code: 69, retriable: false, message: 'No group has this ID.' },
  FETCH_SESSION_ID_NOT_FOUND: { code: 70, retriable: true, message: 'The fetch session is not known.' },
  INVALID_FETCH_SESSION_EPOCH: { code: 71, retriable: true, message: 'The fetch session epoch is not the expected one.' },
  TOPIC_DELETION_DISABLED: { code: 73, retriable: false, message: 'Topic deletion is turned off on the broker.' },
  FENCED_LEADER_EPOCH: { code: 74, retriable: true, message: 'The leader epoch in the request is older than the broker’s.' },
  UNKNOWN_LEADER_EPOCH: { code: 75, retriable: true, message: 'The leader epoch in the request is newer than the broker’s.' },
  UNSUPPORTED_COMPRESSION_TYPE: { code: 76, retriable: false, message: 'The compression codec is not supported here.' },
  OFFSET_NOT_AVAILABLE: { code: 78, retriable: true, message: 'The offset cannot be given yet (the high watermark has not caught up).' },
  MEMBER_ID_REQUIRED: { code: 79, retriable: false, message: 'The member must join again with the member ID the coordinator gave it.' },
  GROUP_MAX_SIZE_REACHED: { code: 81, retriable: false, message: 'The group has as many members as it may have.' },
  FENCED_INSTANCE_ID: { code: 82, retriable: false, message: 'Another member has joined with the same group.instance.id.' },
  GROUP_SUBSCRIBED_TO_TOPIC: { code: 86, retriable: false, message: 'The group has members subscribed to the topic, so its offsets stay.' },
  INVALID_RECORD: { code: 87, retriable: false, message: 'The broker refused a record as not valid.' },
  UNSTABLE_OFFSET_COMMIT: { code: 88, retriable: true, message: 'Offsets of an open transaction are pending for the partition.' },
  THROTTLING_QUOTA_EXCEEDED: { code: 89, retriable: true, message: 'The request went over a throttling quota.' },
  PRODUCER_FENCED: { code: 90, retriable: false, message: 'A newer producer with the same transactional ID has fenced this one.' },
  UNKNOWN_TOPIC_ID: { code: 100, retriable: true, message: 'No topic has the topic ID asked for (topics here have no IDs).' },
} as const satisfies Record<string, KafkaErrorSpec>;

/** A Kafka error name, e.g. `NOT_LEADER_OR_FOLLOWER`. */
export type KafkaErrorName = keyof typeof KAFKA_ERRORS;

/** Kafka's error numbers by name (`KafkaError.OFFSET_OUT_OF_RANGE === 1`), read from {@link KAFKA_ERRORS}. */
export const KafkaError = Object.freeze(
  Object.fromEntries(Object.entries(KAFKA_ERRORS).map(([name, spec]) => [name, spec.code])) as {
    readonly [N in KafkaErrorName]: (typeof KAFKA_ERRORS)[N]['code'];
  },
);

const BY_NUMBER = new Map<number, KafkaErrorName>(
  (Object.entries(KAFKA_ERRORS) as [KafkaErrorName, KafkaErrorSpec][]).map(([name, spec]) => [spec.code, name]),
);

/** The Kafka name of a numeric error code (`UNKNOWN_SERVER_ERROR` for codes not in {@link KAFKA_ERRORS}). */
export function kafkaErrorName(code: number): KafkaErrorName {
  return BY_NUMBER.get(code) ?? 'UNKNOWN_SERVER_ERROR';
}

/** Whether `name` is one of Kafka's error names in {@link KAFKA_ERRORS}. */
export function isKafkaErrorName(name: string): name is KafkaErrorName {
  return Object.hasOwn(KAFKA_ERRORS, name);
}

/**
 * The Kafka error a client library's error says it is, read from the error
 * itself (not its causes): its numeric `code` when that is a Kafka number
 * (kafkajs's protocol errors carry Kafka's number there, and a `type` that
 * is sometimes an older name, such as `NOT_COORDINATOR_FOR_GROUP` for 16),
 * else its `type` when that is a Kafka name. Undefined for anything else:
 * a string `code` (a Node.js errno such as `ECONNREFUSED`, or a
 * ConcordatError's code) is not a Kafka number.
 */
export function kafkaErrorOf(error: unknown): KafkaErrorName | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const { code, type } = error as { code?: unknown; type?: unknown };
  if (typeof code === 'number' && Number.isInteger(code) && code !== KafkaError.NONE) return BY_NUMBER.get(code);
  return typeof type === 'string' && isKafkaErrorName(type) ? type : undefined;
}
