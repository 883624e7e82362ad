/**
 * The group coordinator's requests and answers: Kafka's JoinGroup,
 * SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch with the
 * fields of every version the broker serves, DescribeGroups' and
 * ListGroups' views, consumer lag, and what the coordinator needs to know
 * about topics.
 */
import type { ErrorCode } from '../../errors.js';
import type { GroupProtocol, GroupState } from './group.js';

/** Kafka's JoinGroup request, the fields of every version the broker serves (broker/apis/join-group.ts), as `GroupCoordinator.joinGroup` takes it. */
export interface JoinGroupRequest {
  groupId: string;
  /** '' for a member joining for the first time. */
  memberId: string;
  groupInstanceId?: string | null;
  /** 'consumer' for consumers. */
  protocolType: string;
  protocols: GroupProtocol[];
  sessionTimeoutMs: number;
  /** JoinGroup v0 has none: pass sessionTimeoutMs. */
  rebalanceTimeoutMs: number;
  clientId?: string;
  clientHost?: string;
  /**
   * JoinGroup v4+: a member with no ID is first answered MEMBER_ID_REQUIRED
   * (its new ID in the error's `context.memberId`) and must join again with it.
   * @default false
   */
  requireKnownMemberId?: boolean;
}

/** Kafka's SyncGroup request, the fields of every version the broker serves (broker/apis/sync-group.ts). */
export interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId?: string | null;
  /** SyncGroup v5: checked against the group's when given. */
  protocolType?: string | null;
  protocolName?: string | null;
  /** The leader's assignment; followers send []. */
  assignments: { memberId: string; assignment: Buffer }[];
}

/** Kafka's Heartbeat request, the fields of every version the broker serves (broker/apis/heartbeat.ts). */
export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId?: string | null;
}

/** Kafka's LeaveGroup request, the fields of every version the broker serves (broker/apis/leave-group.ts). */
export interface LeaveGroupRequest {
  groupId: string;
  /** LeaveGroup v3+ may name several members; v0-v2 name one. */
  members: { memberId: string; groupInstanceId?: string | null }[];
}

/** LeaveGroup's answer: one entry per member named, with its error (null: it left). */
export interface LeaveGroupResult {
  members: { memberId: string; groupInstanceId: string | null; errorCode: ErrorCode | null }[];
}

/** Kafka's OffsetCommit request, the fields of every version the broker serves (broker/apis/offset-commit.ts). */
export interface OffsetCommitRequest {
  groupId: string;
  /** -1 with memberId '' for a commit outside group management. */
  generationId: number;
  memberId: string;
  groupInstanceId?: string | null;
  topics: {
    topic: string;
    partitions: { partition: number; offset: number; leaderEpoch?: number; metadata?: string | null }[];
  }[];
}

/** OffsetCommit's answer: each partition's error, null when committed. */
export interface OffsetCommitResult {
  topics: { topic: string; partitions: { partition: number; errorCode: ErrorCode | null }[] }[];
}

/** Kafka's OffsetFetch request, the fields of every version the broker serves (broker/apis/offset-fetch.ts). */
export interface OffsetFetchRequest {
  groupId: string;
  /** null: every partition the group has committed. */
  topics: { topic: string; partitions: number[] }[] | null;
}

/** OffsetFetch's answer: each partition's committed offset (-1 when none), leader epoch, metadata and error. */
export interface OffsetFetchResult {
  topics: {
    topic: string;
    partitions: { partition: number; offset: number; leaderEpoch: number; metadata: string; errorCode: ErrorCode | null }[];
  }[];
}

/** One member as DescribeGroups reports it; `metadata` and `assignment` are the protocol's bytes (ConsumerProtocol for `consumer` groups, consumer-protocol.ts). */
export interface GroupMemberDescription {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  /** Metadata for the chosen protocol; empty unless the group is Stable (as Kafka). */
  metadata: Buffer;
  assignment: Buffer;
}

/** One group as DescribeGroups reports it. */
export interface GroupDescription {
  groupId: string;
  state: GroupState;
  protocolType: string;
  protocolName: string;
  generationId: number;
  leaderId: string | null;
  members: GroupMemberDescription[];
}

/** One group as ListGroups reports it. */
export interface GroupOverview {
  groupId: string;
  protocolType: string;
  state: GroupState;
}

/** What the coordinator needs to know about topics. */
export interface TopicLookup {
  /** Partition count of a topic, or undefined when it does not exist. */
  partitionCount(topic: string): number | undefined;
  /** Offsets of one partition (for lag). */
  describePartition(topic: string, partition: number): { logStartOffset: number; highWatermark: number; logEndOffset: number };
}

/** How far a group's committed offset trails one partition's end (Kafka's consumer lag). */
export interface PartitionLag {
  topic: string;
  partition: number;
  /** The committed offset, -1 when the group committed none for the partition. */
  committedOffset: number;
  logStartOffset: number;
  highWatermark: number;
  /**
   * Records the group has yet to consume: highWatermark − committedOffset,
   * counted from the log start when nothing is committed or the committed
   * offset fell below it (retention deleted those records).
   */
  lag: number;
}
