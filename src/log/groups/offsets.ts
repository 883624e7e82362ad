/**
 * Committed offsets as the group APIs see them: OffsetCommit (with its
 * membership checks) and the commits of Kafka transactions, OffsetFetch,
 * consumer lag, offset retention (KIP-211) and OffsetDelete. Their storage
 * is offset-store.ts.
 */
import { ConcordatError, ErrorCode } from '../../errors.js';
import { CONSUMER_PROTOCOL_TYPE, decodeSubscription } from './consumer-protocol.js';
import type { CoordinatorState } from './coordinator-state.js';
import { checkGroupId, groupError } from './group-errors.js';
import { Group, GroupState } from './group.js';
import type { OffsetEntry } from './offset-store.js';
import type { Rebalancer } from './rebalance.js';
import type { OffsetCommitRequest, OffsetCommitResult, OffsetFetchRequest, OffsetFetchResult, PartitionLag } from './requests.js';

/**
 * Kafka's consumer lag of one partition: records the group has yet to
 * consume, highWatermark − max(committedOffset, logStartOffset), never
 * negative; counted from the log start when nothing is committed (-1) or
 * the committed offset fell below it (retention deleted those records).
 */
export function consumerLag(committedOffset: number, bounds: { logStartOffset: number; highWatermark: number }): number {
  return Math.max(0, bounds.highWatermark - Math.max(committedOffset, bounds.logStartOffset));
}

/** Handles the coordinator's offset requests. */
export class OffsetHandler {
  /** Works on `state`'s groups and offset store; a commit renews the member's session through `rebalancer`. */
  constructor(
    private readonly state: CoordinatorState,
    private readonly rebalancer: Rebalancer,
  ) {}

  /** `GroupCoordinator.commitOffsets` (its doc there is the contract). */
  async commitOffsets(request: OffsetCommitRequest): Promise<OffsetCommitResult> {
    this.state.checkOpen();
    checkGroupId(request.groupId, true);
    this.checkCommitMembership(request);
    const now = Date.now();
    const entries: OffsetEntry[] = [];
    const topics = request.topics.map(({ topic, partitions }) => ({
      topic,
      partitions: partitions.map((p) => {
        const errorCode = this.checkCommittedPartition(topic, p.partition, p.metadata ?? '');
        if (errorCode === null) {
          if (!Number.isSafeInteger(p.offset)) throw new RangeError(`committed offset ${p.offset} is not a safe integer`);
          entries.push({
            topic,
            partition: p.partition,
            offset: p.offset,
            leaderEpoch: p.leaderEpoch ?? -1,
            metadata: p.metadata ?? '',
            commitTimestampMs: now,
          });
        }
        return { partition: p.partition, errorCode };
      }),
    }));
    if (entries.length > 0) await this.state.offsets.commit(request.groupId, entries);
    return { topics };
  }

  /** `GroupCoordinator.commitTransactionalOffsets` (its doc there is the contract). */
  async commitTransactionalOffsets(
    groupId: string,
    offsets: readonly { topic: string; partition: number; offset: number; leaderEpoch: number; metadata: string }[],
  ): Promise<void> {
    this.state.checkOpen();
    const now = Date.now();
    const entries = offsets
      .filter((o) => this.checkCommittedPartition(o.topic, o.partition, '') === null)
      .map((o): OffsetEntry => ({ ...o, commitTimestampMs: now }));
    // A transaction's outcome must not fail on a bound: past groupsMax the group shows up after the next open.
    if (!this.state.groups.has(groupId) && this.state.groups.size < this.state.options.groupsMax) this.state.groups.set(groupId, new Group(groupId));
    if (entries.length > 0) await this.state.offsets.commit(groupId, entries);
  }

  private checkCommitMembership(request: OffsetCommitRequest): void {
    let group = this.state.groups.get(request.groupId);
    if (group === undefined) {
      if (request.generationId >= 0) {
        throw groupError(ErrorCode.ILLEGAL_GENERATION, `group '${request.groupId}' has no generation ${request.generationId}`);
      }
      group = this.state.createGroup(request.groupId);
    }
    if (group.is(GroupState.DEAD)) throw groupError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `group '${request.groupId}' is being removed; retry`);
    if (request.generationId < 0 && group.is(GroupState.EMPTY)) return;
    this.state.checkFenced(group, request.memberId, request.groupInstanceId);
    const { member } = this.state.memberOf(request.groupId, request.memberId, request.generationId);
    if (group.is(GroupState.COMPLETING_REBALANCE)) {
      throw groupError(ErrorCode.REBALANCE_IN_PROGRESS, `group '${group.groupId}' is completing a rebalance; commit after SyncGroup`);
    }
    this.rebalancer.scheduleExpiry(group, member, member.sessionTimeoutMs);
  }

  private checkCommittedPartition(topic: string, partition: number, metadata: string): ErrorCode | null {
    if (Buffer.byteLength(metadata, 'utf8') > this.state.options.offsetMetadataMaxBytes) return ErrorCode.OFFSET_METADATA_TOO_LARGE;
    const partitions = this.state.topics.partitionCount(topic);
    if (partitions === undefined || !Number.isInteger(partition) || partition < 0 || partition >= partitions) {
      return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
    }
    return null;
  }

  /** `GroupCoordinator.fetchOffsets` (its doc there is the contract). */
  async fetchOffsets(request: OffsetFetchRequest): Promise<OffsetFetchResult> {
    this.state.checkOpen();
    checkGroupId(request.groupId, true);
    if (request.topics === null) {
      const byTopic = new Map<string, OffsetFetchResult['topics'][number]['partitions']>();
      for (const entry of this.state.offsets.list(request.groupId)) {
        const list = byTopic.get(entry.topic) ?? [];
        list.push({ partition: entry.partition, offset: entry.offset, leaderEpoch: entry.leaderEpoch, metadata: entry.metadata, errorCode: null });
        byTopic.set(entry.topic, list);
      }
      return { topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions: partitions.sort((a, b) => a.partition - b.partition) })) };
    }
    return {
      topics: request.topics.map(({ topic, partitions }) => ({
        topic,
        partitions: partitions.map((partition) => {
          const entry = this.state.offsets.get(request.groupId, topic, partition);
          return {
            partition,
            offset: entry?.offset ?? -1,
            leaderEpoch: entry?.leaderEpoch ?? -1,
            metadata: entry?.metadata ?? '',
            errorCode: null,
          };
        }),
      })),
    };
  }

  /** `GroupCoordinator.lag` (its doc there is the contract). */
  lag(groupId: string, topics?: readonly string[]): PartitionLag[] {
    const pairs: [string, number][] = [];
    if (topics === undefined) {
      for (const entry of this.state.offsets.list(groupId)) pairs.push([entry.topic, entry.partition]);
    } else {
      for (const topic of topics) {
        const count = this.state.topics.partitionCount(topic);
        if (count === undefined) {
          throw new ConcordatError(`This server does not host this topic-partition: topic '${topic}' does not exist`, {
            code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            context: { topic },
          });
        }
        for (let partition = 0; partition < count; partition++) pairs.push([topic, partition]);
      }
    }
    pairs.sort(([ta, pa], [tb, pb]) => (ta < tb ? -1 : ta > tb ? 1 : pa - pb));
    return pairs
      .filter(([topic, partition]) => (this.state.topics.partitionCount(topic) ?? 0) > partition)
      .map(([topic, partition]) => {
        const { logStartOffset, highWatermark } = this.state.topics.describePartition(topic, partition);
        const committedOffset = this.state.offsets.get(groupId, topic, partition)?.offset ?? -1;
        return { topic, partition, committedOffset, logStartOffset, highWatermark, lag: consumerLag(committedOffset, { logStartOffset, highWatermark }) };
      });
  }

  /** `GroupCoordinator.expireOffsets` (its doc there is the contract). */
  async expireOffsets(nowMs: number): Promise<string[]> {
    if (this.state.closed) return [];
    const expired: string[] = [];
    for (const groupId of this.state.offsets.groupIds()) {
      const group = this.state.groups.get(groupId);
      if (group !== undefined && !group.is(GroupState.EMPTY)) continue;
      const since = Math.max(this.state.offsets.lastCommitMs(groupId), group?.emptySinceMs ?? -1);
      if (nowMs - since <= this.state.options.offsetsRetentionMs) continue;
      await this.state.offsets.deleteGroup(groupId);
      if (group !== undefined && group.is(GroupState.EMPTY)) {
        group.transitionTo(GroupState.DEAD);
        this.state.groups.delete(groupId);
      }
      expired.push(groupId);
      this.state.logger.info({ groupId }, 'committed offsets expired (offsetsRetentionMs)');
    }
    return expired;
  }

  /** `GroupCoordinator.deleteOffsets` (its doc there is the contract). */
  async deleteOffsets(
    groupId: string,
    partitions: readonly { topic: string; partition: number }[],
  ): Promise<{ topic: string; partition: number; errorCode: ErrorCode | null }[]> {
    this.state.checkOpen();
    const group = this.state.groups.get(groupId);
    if (group === undefined || group.is(GroupState.DEAD)) throw groupError(ErrorCode.GROUP_ID_NOT_FOUND, `group '${groupId}' does not exist`);
    let subscribed = (_topic: string): boolean => false;
    if (!group.is(GroupState.EMPTY)) {
      if (group.protocolType !== CONSUMER_PROTOCOL_TYPE) {
        throw groupError(ErrorCode.NON_EMPTY_GROUP, `group '${groupId}' has members and is not a consumer group; its offsets can be deleted once it is empty`);
      }
      const topics = subscribedTopics(group);
      subscribed = (topic) => topics === null || topics.has(topic);
    }
    const eligible = partitions.filter((p) => !subscribed(p.topic));
    await this.state.offsets.removeOffsets(groupId, eligible);
    return partitions.map((p) => ({ ...p, errorCode: subscribed(p.topic) ? ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC : null }));
  }
}

/** The topics a consumer group's members subscribe to, or null when some member's subscription cannot be decoded. */
function subscribedTopics(group: Group): Set<string> | null {
  const topics = new Set<string>();
  for (const member of group.members.values()) {
    try {
      const metadata = group.protocolName === null ? member.protocols[0]?.metadata : member.metadataFor(group.protocolName);
      if (metadata === undefined) return null;
      for (const topic of decodeSubscription(metadata).topics) topics.add(topic);
    } catch {
      return null;
    }
  }
  return topics;
}
