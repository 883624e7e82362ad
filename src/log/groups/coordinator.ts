/**
 * The consumer group coordinator's front door (Kafka's GroupCoordinator):
 * one method per group API, each handled by the file of its concept
 * (join-group.ts, sync-group.ts, heartbeat.ts, offsets.ts, rebalance.ts,
 * stored-membership.ts), plus the admin APIs and close.
 */
import type { CompiledGroupCoordinatorOptions } from '../../config/index.js';
import { ErrorCode } from '../../errors.js';
import type { Logger } from '../../observability/index.js';
import { CoordinatorState } from './coordinator-state.js';
import { groupError } from './group-errors.js';
import { EMPTY_BYTES, Group, GroupState, type JoinGroupResult, type Member, type SyncGroupResult } from './group.js';
import { JoinGroupHandler } from './join-group.js';
import { SessionHandler } from './heartbeat.js';
import { OffsetStore } from './offset-store.js';
import { OffsetHandler } from './offsets.js';
import { Rebalancer } from './rebalance.js';
import type {
  GroupDescription,
  GroupOverview,
  HeartbeatRequest,
  JoinGroupRequest,
  LeaveGroupRequest,
  LeaveGroupResult,
  OffsetCommitRequest,
  OffsetCommitResult,
  OffsetFetchRequest,
  OffsetFetchResult,
  PartitionLag,
  SyncGroupRequest,
  TopicLookup,
} from './requests.js';
import { StoredMembership } from './stored-membership.js';
import { SyncGroupHandler } from './sync-group.js';

/**
 * The consumer-group coordinator (Kafka's classic `GroupCoordinator`, the
 * protocol of JoinGroup v0-v5, SyncGroup, Heartbeat, LeaveGroup,
 * OffsetCommit, OffsetFetch). The broker's group APIs call these methods
 * one to one; the embedded transport's consumer calls them in process.
 *
 * Errors are thrown as ConcordatError with Kafka's error names as codes
 * (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, ...), so the
 * broker maps them through its one table. Errors of one partition in
 * OffsetCommit come back in the result instead; an error that concerns the
 * whole request (unknown member, wrong generation) is thrown, and the broker
 * sets it on every partition as Kafka does.
 *
 * Semantics follow Kafka's coordinator (2.x-3.x, core/.../GroupCoordinator.scala):
 * - JoinGroup blocks until every known member has rejoined, or the longest
 *   rebalance timeout of the members passes; members that did not rejoin are
 *   removed; the generation increments; the leader alone gets the member list.
 * - A follower rejoining a Stable group with unchanged metadata gets the
 *   current generation at once; the leader rejoining, or changed metadata,
 *   starts a rebalance.
 * - A member that sends nothing within its session timeout is removed and
 *   the group rebalances; a member waiting in JoinGroup is kept alive.
 * - Heartbeat answers REBALANCE_IN_PROGRESS while PreparingRebalance; in
 *   CompletingRebalance it answers normally (as Kafka ≥ 2.5).
 * - OffsetCommit with generation -1 to an Empty group stores offsets without
 *   membership (standalone consumers, admin tools); otherwise member and
 *   generation must match; commits are accepted during PreparingRebalance
 *   (members commit before rejoining) and refused in CompletingRebalance.
 *
 * Static membership (KIP-345, `group.instance.id`), as Kafka ≥ 2.4:
 * - A static member that joins again with no member ID (it restarted) while
 *   the group knows its instance ID gets a new member ID in place of the old
 *   one, and its old assignment: in a Stable group without a rebalance (the
 *   JoinGroup answer carries the current generation and the current leader,
 *   so it does not act as leader; its SyncGroup returns the stored
 *   assignment), unless the group's protocol would change; in
 *   CompletingRebalance with a rebalance (the leader may have assigned the
 *   old ID). Static members skip MEMBER_ID_REQUIRED.
 * - The old member ID is fenced: JoinGroup, SyncGroup, Heartbeat,
 *   OffsetCommit and LeaveGroup naming the instance ID with another member ID
 *   get FENCED_INSTANCE_ID, and its waiting JoinGroup or SyncGroup is
 *   answered so.
 * - A static member that does not rejoin during a rebalance stays in the
 *   group (with an assignment) until its session expires; the leader is
 *   chosen among members that rejoined.
 * - LeaveGroup v3 naming an instance ID (member ID '' allowed) removes that
 *   member. Clients do not send LeaveGroup for a static member on close: its
 *   session timeout decides.
 * Durability: committed offsets always (offset-store.ts). Membership is kept
 * in memory, and, for a group that has static members, also in the offset
 * store when a generation becomes Stable and when a static member is
 * replaced (Kafka's GroupMetadata record): after a restart such a group is
 * Stable again with its generation, members and assignments, each member's
 * session counting from the open, so a static member restarting with the
 * broker gets its assignment back without a rebalance. Groups of dynamic
 * members only start Empty after a restart, and their members rejoin, as
 * after a coordinator failover.
 *
 * Concurrency (one event loop; calls interleave at every await): every
 * method may be called while others are pending, from any number of
 * members and connections; group state changes happen synchronously
 * between awaits, so each request sees and leaves a consistent group.
 * joinGroup and syncGroup stay pending for as long as the protocol makes
 * them wait (the rebalance, the leader's assignment); a later JoinGroup of
 * the same member answers the earlier one REBALANCE_IN_PROGRESS. Commits
 * resolve after their offsets are durable (offset-store.ts); concurrent
 * commits share one write and fdatasync. `close` may overlap anything:
 * waiting joins and syncs fail with COORDINATOR_NOT_AVAILABLE, and so do
 * later joins, syncs, heartbeats, leaves, commits, fetches and deletions
 * (the descriptions and lag still answer from memory).
 */
export class GroupCoordinator {
  private readonly state: CoordinatorState;
  private readonly stored: StoredMembership;
  private readonly rebalancer: Rebalancer;
  private readonly joins: JoinGroupHandler;
  private readonly syncs: SyncGroupHandler;
  private readonly sessions: SessionHandler;
  private readonly offsetRequests: OffsetHandler;

  private constructor(options: CompiledGroupCoordinatorOptions, offsets: OffsetStore, topics: TopicLookup, logger: Logger) {
    this.state = new CoordinatorState(options, offsets, topics, logger);
    this.stored = new StoredMembership(this.state);
    this.rebalancer = new Rebalancer(this.state, this.stored);
    this.joins = new JoinGroupHandler(this.state, this.rebalancer, this.stored);
    this.syncs = new SyncGroupHandler(this.state, this.rebalancer, this.stored);
    this.sessions = new SessionHandler(this.state, this.rebalancer);
    this.offsetRequests = new OffsetHandler(this.state, this.rebalancer);
    for (const groupId of offsets.groupIds()) this.state.groups.set(groupId, new Group(groupId));
    const scheduleExpiry = (group: Group, member: Member, timeoutMs: number): void => this.rebalancer.scheduleExpiry(group, member, timeoutMs);
    for (const [groupId, stored] of offsets.storedGroups()) this.stored.loadStoredGroup(groupId, stored, scheduleExpiry);
  }

  /** Opens the offset store under `dataDir` and recreates the groups that have offsets, Empty. */
  static async open(dataDir: string, options: CompiledGroupCoordinatorOptions, topics: TopicLookup, logger: Logger): Promise<GroupCoordinator> {
    const offsets = await OffsetStore.open(dataDir, options.offsetsLogBytesMax, logger);
    return new GroupCoordinator(options, offsets, topics, logger);
  }

  /**
   * Kafka's JoinGroup. Resolves when the rebalance completes (or at once for
   * a follower of a Stable group with unchanged metadata).
   * @throws ConcordatError INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT, INCONSISTENT_GROUP_PROTOCOL,
   *   UNKNOWN_MEMBER_ID, MEMBER_ID_REQUIRED (context.memberId), GROUP_MAX_SIZE_REACHED,
   *   REBALANCE_IN_PROGRESS (a newer JoinGroup of the same member replaced this one),
   *   FENCED_INSTANCE_ID (the groupInstanceId belongs to another member ID now),
   *   COORDINATOR_NOT_AVAILABLE (closed; or the membership of a static group could not be stored),
   *   LIMIT_EXCEEDED (groupsMax)
   */
  joinGroup(request: JoinGroupRequest): Promise<JoinGroupResult> {
    return this.joins.joinGroup(request);
  }

  /**
   * Kafka's SyncGroup. The leader's call carries the assignment and makes
   * the group Stable; followers wait for it.
   * @throws ConcordatError UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS,
   *   INCONSISTENT_GROUP_PROTOCOL, COORDINATOR_NOT_AVAILABLE
   */
  syncGroup(request: SyncGroupRequest): Promise<SyncGroupResult> {
    return this.syncs.syncGroup(request);
  }

  /**
   * Kafka's Heartbeat: keeps the member's session alive.
   * @throws ConcordatError UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS
   *   (PreparingRebalance: the member must rejoin), COORDINATOR_NOT_AVAILABLE
   */
  heartbeat(request: HeartbeatRequest): Promise<void> {
    return this.sessions.heartbeat(request);
  }

  /**
   * Kafka's LeaveGroup (v3: several members). Per-member errors in the
   * result: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID (the instance ID belongs to
   * another member ID). A member named by groupInstanceId (member ID '' or
   * its current one) is the static member holding it.
   */
  leaveGroup(request: LeaveGroupRequest): Promise<LeaveGroupResult> {
    return this.sessions.leaveGroup(request);
  }

  /**
   * Kafka's OffsetCommit. Resolves after the offsets are durable.
   * @throws ConcordatError (whole request) UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS,
   *   COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR; per partition in the result:
   *   OFFSET_METADATA_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION
   */
  commitOffsets(request: OffsetCommitRequest): Promise<OffsetCommitResult> {
    return this.offsetRequests.commitOffsets(request);
  }

  /**
   * Offsets committed by a Kafka transaction (TxnOffsetCommit), written when
   * the transaction coordinator completes the commit: no membership check
   * (the producer is not a member; Kafka's TxnOffsetCommit v0-2 carries no
   * generation either). Resolves after they are durable. Partitions whose
   * topic no longer exists are skipped.
   * @throws ConcordatError COORDINATOR_NOT_AVAILABLE (closed), KAFKA_STORAGE_ERROR
   */
  commitTransactionalOffsets(
    groupId: string,
    offsets: readonly { topic: string; partition: number; offset: number; leaderEpoch: number; metadata: string }[],
  ): Promise<void> {
    return this.offsetRequests.commitTransactionalOffsets(groupId, offsets);
  }

  /** Kafka's OffsetFetch: committed offsets, -1 where none, whatever the group's state. */
  fetchOffsets(request: OffsetFetchRequest): Promise<OffsetFetchResult> {
    return this.offsetRequests.fetchOffsets(request);
  }

  /**
   * Consumer lag of a group on every partition it committed, or on the
   * partitions of `topics` when given (all partitions of each).
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION for a named topic that does not exist
   */
  lag(groupId: string, topics?: readonly string[]): PartitionLag[] {
    return this.offsetRequests.lag(groupId, topics);
  }

  /**
   * Offset retention (Kafka's offsets.retention.minutes, KIP-211): the
   * offsets of a group without members are deleted once both its last
   * commit and the moment it became empty are older than offsetsRetentionMs.
   * Returns the groups whose offsets went.
   */
  expireOffsets(nowMs: number): Promise<string[]> {
    return this.offsetRequests.expireOffsets(nowMs);
  }

  /** Counters of the committed-offsets log (writes, records, compactions). */
  offsetStoreStats(): Readonly<{ writes: number; records: number; compactions: number }> {
    return { ...this.state.offsets.stats };
  }

  /** Forgets the offsets of a deleted topic (Kafka's handleDeletedPartitions). */
  async removeTopicOffsets(topic: string): Promise<void> {
    await this.state.offsets.removeTopic(topic);
  }

  // ------------------------------------------------------------------ admin

  /** Kafka's DescribeGroups for one group; an unknown group is reported Dead with no members. */
  describeGroup(groupId: string): GroupDescription {
    const group = this.state.groups.get(groupId);
    if (group === undefined) {
      return { groupId, state: GroupState.DEAD, protocolType: '', protocolName: '', generationId: -1, leaderId: null, members: [] };
    }
    const stable = group.is(GroupState.STABLE);
    return {
      groupId,
      state: group.state,
      protocolType: group.protocolType ?? '',
      protocolName: group.protocolName ?? '',
      generationId: group.generationId,
      leaderId: group.leaderId,
      members: [...group.members.values()].map((member) => ({
        memberId: member.memberId,
        groupInstanceId: member.groupInstanceId,
        clientId: member.clientId,
        clientHost: member.clientHost,
        metadata: stable ? member.metadataFor(group.protocolName!) : EMPTY_BYTES,
        assignment: stable ? member.assignment : EMPTY_BYTES,
      })),
    };
  }

  /** Kafka's ListGroups: every group the coordinator knows (members now, or committed offsets), in no particular order. */
  listGroups(): GroupOverview[] {
    return [...this.state.groups.values()].map((group) => ({ groupId: group.groupId, protocolType: group.protocolType ?? '', state: group.state }));
  }

  /** Kafka's DeleteGroups: only Empty groups; their offsets go too. */
  async deleteGroups(groupIds: readonly string[]): Promise<{ groupId: string; errorCode: ErrorCode | null }[]> {
    this.state.checkOpen();
    const results: { groupId: string; errorCode: ErrorCode | null }[] = [];
    for (const groupId of groupIds) {
      const group = this.state.groups.get(groupId);
      if (group === undefined) {
        results.push({ groupId, errorCode: ErrorCode.GROUP_ID_NOT_FOUND });
      } else if (!group.is(GroupState.EMPTY)) {
        results.push({ groupId, errorCode: ErrorCode.NON_EMPTY_GROUP });
      } else {
        group.transitionTo(GroupState.DEAD);
        this.state.groups.delete(groupId);
        await this.state.offsets.deleteGroup(groupId);
        results.push({ groupId, errorCode: null });
      }
    }
    return results;
  }

  /**
   * Kafka's OffsetDelete: removes a group's committed offsets of some
   * partitions. An Empty group loses them all; a consumer group with
   * members keeps those of topics a member subscribes to
   * (GROUP_SUBSCRIBED_TO_TOPIC for each; a member whose subscription cannot
   * be decoded counts as subscribed to everything); any other group with
   * members is refused whole (NON_EMPTY_GROUP, thrown).
   * @throws ConcordatError GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR
   */
  deleteOffsets(
    groupId: string,
    partitions: readonly { topic: string; partition: number }[],
  ): Promise<{ topic: string; partition: number; errorCode: ErrorCode | null }[]> {
    return this.offsetRequests.deleteOffsets(groupId, partitions);
  }

  /**
   * In-process hint: `listener` runs when the group starts a rebalance, so a
   * member in this process can rejoin without waiting for its next
   * heartbeat. Returns the unsubscribe function. Network members learn it
   * from Heartbeat as usual.
   */
  onRebalance(groupId: string, listener: () => void): () => void {
    let set = this.state.listeners.get(groupId);
    if (set === undefined) {
      set = new Set();
      this.state.listeners.set(groupId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.state.listeners.delete(groupId);
    };
  }

  /** Fails waiting joins and syncs with COORDINATOR_NOT_AVAILABLE, stops timers, waits for offset writes. */
  async close(): Promise<void> {
    if (this.state.closed) return;
    this.state.closed = true;
    const error = groupError(ErrorCode.COORDINATOR_NOT_AVAILABLE, 'the group coordinator is closed');
    for (const group of this.state.groups.values()) {
      if (group.joinTimer !== null) clearTimeout(group.joinTimer);
      for (const timer of group.pendingMembers.values()) clearTimeout(timer);
      for (const member of group.members.values()) {
        member.clearExpiry();
        member.joinWaiter?.reject(error);
        member.syncWaiter?.reject(error);
      }
      group.state = GroupState.DEAD;
    }
    this.state.groups.clear();
    this.state.listeners.clear();
    await this.state.offsets.close();
  }
}
