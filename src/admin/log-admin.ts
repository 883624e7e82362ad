/**
 * The operations an operator runs on topics and consumer groups, whatever
 * holds them: the embedded log directory (`embedded.ts`, through the log
 * engine's API) or a Kafka-compatible broker — `concordat broker` or Apache
 * Kafka — through kafkajs's admin client (`kafka.ts`). The `concordat
 * topics|groups` commands and the console call these and only format the
 * results; both implementations answer in the same shapes, with Kafka's
 * names and units (offsets, bytes, ms since the epoch).
 *
 * @module
 */

/** One topic in a listing. */
export interface TopicSummary {
  name: string;
  /** Number of partitions. */
  partitions: number;
}

/** One partition of a described topic. */
export interface TopicPartitionInfo {
  partition: number;
  /** First offset still in the log (Kafka's log start offset; ListOffsets earliest). */
  logStartOffset: number;
  /** Offset the next record will get; consumers read below it (ListOffsets latest). */
  highWatermark: number;
  /** Bytes of its segments on disk; null where the source does not say (kafkajs has no DescribeLogDirs). */
  sizeBytes: number | null;
  /** Segment files; null where the source does not say. */
  segments: number | null;
}

/** One topic config, under Kafka's name (`retention.ms`, `segment.bytes`, ...). */
export interface TopicConfigEntry {
  name: string;
  /** The value as Kafka writes it (decimal for numbers); null for a sensitive or unset one. */
  value: string | null;
  /** True when the topic does not override the broker's (or the log's) default. */
  isDefault: boolean;
}

/** A described topic. */
export interface TopicInfo {
  name: string;
  partitions: TopicPartitionInfo[];
  /** Sum of the partitions' sizes, or null when any of them is unknown. */
  sizeBytes: number | null;
  /** Sorted by name. */
  configs: TopicConfigEntry[];
}

/** What `createTopic` is given. */
export interface CreateTopicRequest {
  name: string;
  /** 1.. the log's partitionsPerTopicMax (the broker's limit for Kafka). */
  partitions: number;
  /** Kafka topic configs by name (`retention.ms: '86400000'`); the rest are the defaults. */
  configs?: Readonly<Record<string, string>>;
}

/** One consumer group in a listing. */
export interface GroupSummary {
  groupId: string;
  /** Kafka's group state: Empty, PreparingRebalance, CompletingRebalance, Stable or Dead. */
  state: string;
  /** `consumer` for consumer groups. */
  protocolType: string;
}

/** Topic and partitions, as in a member's assignment. */
export interface TopicPartitions {
  topic: string;
  partitions: number[];
}

/** A member of a described group. */
export interface GroupMemberInfo {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  /** Decoded from the consumer protocol; empty unless the group is Stable (Kafka sends it only then). */
  assignment: TopicPartitions[];
}

/** A group's position on one partition. */
export interface GroupPartitionOffset {
  topic: string;
  partition: number;
  /** The committed offset; -1 when the group committed none for the partition. */
  committedOffset: number;
  logStartOffset: number;
  highWatermark: number;
  /** Records yet to consume: highWatermark − max(committedOffset, logStartOffset), never negative. */
  lag: number;
  /** The member the partition is assigned to, or null. */
  memberId: string | null;
}

/** A described consumer group. */
export interface GroupInfo {
  groupId: string;
  /** Dead for a group the coordinator does not know (Kafka's answer). */
  state: string;
  protocolType: string;
  /** The assignor the members agreed on (`range`, `roundrobin`, ...), '' when none. */
  protocol: string;
  /** The generation; null where the source does not say (Kafka's DescribeGroups has none). */
  generationId: number | null;
  /** The leader's member ID; null where there is none or the source does not say. */
  leaderId: string | null;
  members: GroupMemberInfo[];
  /** Every partition the group committed an offset for or is assigned, by topic then partition. */
  offsets: GroupPartitionOffset[];
}

/** Where `resetOffsets` moves a group (Kafka's `kafka-consumer-groups --reset-offsets` targets). */
export type OffsetResetTarget =
  | { kind: 'earliest' }
  | { kind: 'latest' }
  /** The first offset whose record's timestamp is at or after `timestampMs`; the high watermark where none is. */
  | { kind: 'datetime'; timestampMs: number }
  /** This offset, moved into [logStartOffset, highWatermark] (as Kafka's tool does). */
  | { kind: 'offset'; offset: number };

/** What `resetOffsets` is given. */
export interface OffsetResetRequest {
  groupId: string;
  topic: string;
  /** Partitions to move. @default every partition of the topic */
  partitions?: readonly number[];
  to: OffsetResetTarget;
  /** Compute and return the plan; commit nothing. @default false */
  dryRun?: boolean;
}

/** One partition of a reset. */
export interface OffsetResetPartition {
  partition: number;
  /** The committed offset before the reset; -1 when none. */
  currentOffset: number;
  newOffset: number;
  logStartOffset: number;
  highWatermark: number;
}

/** What a reset did, or (dry run) would do. */
export interface OffsetResetPlan {
  groupId: string;
  topic: string;
  dryRun: boolean;
  /** True when the new offsets were committed (never for a dry run). */
  applied: boolean;
  partitions: OffsetResetPartition[];
}

/**
 * Topics and consumer groups of one log or cluster.
 *
 * Errors are ConcordatErrors with Kafka's names as codes where one exists:
 * UNKNOWN_TOPIC_OR_PARTITION, TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
 * INVALID_CONFIG, INVALID_TOPIC_EXCEPTION, NON_EMPTY_GROUP (a reset while
 * the group has members), LOG_DIR_LOCKED (embedded, see `embedded.ts`),
 * COORDINATOR_NOT_AVAILABLE (broker unreachable). Each message says what
 * was wrong and what to do.
 *
 * Calls may run concurrently; `close` waits for none of them.
 */
export interface LogAdmin {
  /** For messages: `log directory <path>` or `broker <host:port>`. */
  readonly target: string;
  /** Every topic, sorted by name (internal ones such as `__consumer_offsets` included where the broker has them). */
  listTopics(): Promise<TopicSummary[]>;
  /** @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION */
  describeTopic(name: string): Promise<TopicInfo>;
  /** @throws ConcordatError TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS, INVALID_CONFIG, INVALID_TOPIC_EXCEPTION */
  createTopic(request: CreateTopicRequest): Promise<void>;
  /** Deletes the topic, its records and the groups' committed offsets for it. @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION */
  deleteTopic(name: string): Promise<void>;
  /** Every group the coordinator knows, sorted by ID. */
  listGroups(): Promise<GroupSummary[]>;
  /** State, members, assignment, committed offsets and lag. An unknown group is Dead with nothing in it. */
  describeGroup(groupId: string): Promise<GroupInfo>;
  /**
   * Moves the group's committed offsets on `topic` (all its partitions, or
   * `partitions`) to `to`. Refused while the group has members, dry run or
   * not (as Kafka's tool): their commits would overwrite the reset.
   * @throws ConcordatError NON_EMPTY_GROUP while the group has members; UNKNOWN_TOPIC_OR_PARTITION
   */
  resetOffsets(request: OffsetResetRequest): Promise<OffsetResetPlan>;
  /** Releases the log directory (its lock) or disconnects from the broker. */
  close(): Promise<void>;
}
