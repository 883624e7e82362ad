import { randomUUID } from 'node:crypto';
import type { CompiledGroupCoordinatorOptions } from '../../config/index.js';
import { ConcordatError, ErrorCode } from '../../errors.js';
import type { Logger } from '../../observability/index.js';
import { Deferred, EMPTY_BYTES, Group, GroupState, Member, type GroupProtocol, type JoinGroupResult, type SyncGroupResult } from './group.js';
import { CONSUMER_PROTOCOL_TYPE, decodeSubscription } from './consumer-protocol.js';
import { OffsetStore, type OffsetEntry, type StoredGroupMetadata } from './offset-store.js';

/** Kafka's NewMemberJoinTimeoutMs: a new member waiting in JoinGroup is dropped after this. */
export const NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000;
const GROUP_ID_LENGTH_MAX = 32_767;
const INT32_MAX = 2 ** 31 - 1;

/** Kafka's JoinGroup request, the fields of every version the broker serves (broker/apis/join-group.ts), as {@link GroupCoordinator.joinGroup} takes it. */
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
  private readonly groups = new Map<string, Group>();
  private readonly listeners = new Map<string, Set<() => void>>();
  private closed = false;

  private constructor(
    private readonly options: CompiledGroupCoordinatorOptions,
    private readonly offsets: OffsetStore,
    private readonly topics: TopicLookup,
    private readonly logger: Logger,
  ) {
    for (const groupId of offsets.groupIds()) this.groups.set(groupId, new Group(groupId));
    for (const [groupId, stored] of offsets.storedGroups()) this.loadStoredGroup(groupId, stored);
  }

  /** Opens the offset store under `dataDir` and recreates the groups that have offsets, Empty. */
  static async open(dataDir: string, options: CompiledGroupCoordinatorOptions, topics: TopicLookup, logger: Logger): Promise<GroupCoordinator> {
    const offsets = await OffsetStore.open(dataDir, options.offsetsLogBytesMax, logger);
    return new GroupCoordinator(options, offsets, topics, logger);
  }

  // ------------------------------------------------------------------ JoinGroup

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
    try {
      this.checkJoinRequest(request);
      const isNew = request.memberId === '';
      let group = this.groups.get(request.groupId);
      if (group === undefined) {
        if (!isNew) throw groupError(ErrorCode.UNKNOWN_MEMBER_ID, `member ${request.memberId} is not in group '${request.groupId}' (no such group)`);
        group = this.createGroup(request.groupId);
      }
      if (group.is(GroupState.DEAD)) throw groupError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `group '${request.groupId}' is being removed; retry`);
      const returning = group.staticMember(request.groupInstanceId) !== undefined;
      if (isNew && !returning && group.members.size + group.pendingMembers.size >= this.options.groupMaxSize) {
        throw groupError(
          ErrorCode.GROUP_MAX_SIZE_REACHED,
          `group '${request.groupId}' has ${this.options.groupMaxSize} members (groupMaxSize); raise the log option groups.groupMaxSize`,
        );
      }
      const result = isNew ? this.joinNewMember(group, request) : this.joinKnownMember(group, request);
      if (group.is(GroupState.PREPARING_REBALANCE)) this.tryCompleteJoin(group);
      return result;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private checkJoinRequest(request: JoinGroupRequest): void {
    this.checkOpen();
    checkGroupId(request.groupId);
    if (request.groupInstanceId === '') {
      throw groupError(ErrorCode.INVALID_GROUP_ID, 'group.instance.id must not be empty: give one, or none (null) for a dynamic member');
    }
    const { minSessionTimeoutMs, maxSessionTimeoutMs } = this.options;
    if (request.sessionTimeoutMs < minSessionTimeoutMs || request.sessionTimeoutMs > maxSessionTimeoutMs) {
      throw groupError(
        ErrorCode.INVALID_SESSION_TIMEOUT,
        `session timeout ${request.sessionTimeoutMs} ms is outside ${minSessionTimeoutMs}..${maxSessionTimeoutMs} ms ` +
          '(log options groups.minSessionTimeoutMs and groups.maxSessionTimeoutMs)',
      );
    }
    if (!Number.isInteger(request.rebalanceTimeoutMs) || request.rebalanceTimeoutMs < 0 || request.rebalanceTimeoutMs > INT32_MAX) {
      throw new RangeError(`rebalanceTimeoutMs ${request.rebalanceTimeoutMs} is not an int32 ≥ 0`);
    }
    if (request.protocolType.length === 0 || request.protocols.length === 0) {
      throw groupError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, 'a member must name a protocol type and at least one protocol');
    }
  }

  private createGroup(groupId: string): Group {
    if (this.groups.size >= this.options.groupsMax) {
      throw new ConcordatError(
        `the coordinator already has ${this.groups.size} groups (groupsMax); delete unused groups or raise the log option groups.groupsMax`,
        { code: ErrorCode.LIMIT_EXCEEDED, retriable: true, context: { limit: 'groups.groupsMax' } },
      );
    }
    const group = new Group(groupId);
    this.groups.set(groupId, group);
    return group;
  }

  private joinNewMember(group: Group, request: JoinGroupRequest): Promise<JoinGroupResult> {
    this.checkProtocols(group, request);
    const instanceId = request.groupInstanceId ?? null;
    // As Kafka: a static member's ID starts with its instance ID, a dynamic one's with its client ID.
    const memberId = `${instanceId ?? (request.clientId || 'member')}-${randomUUID()}`;
    const previous = group.staticMember(instanceId);
    if (previous !== undefined) return this.replaceStaticMember(group, previous, memberId, request);
    if (request.requireKnownMemberId === true && instanceId === null) {
      const timer = setTimeout(() => this.expirePendingMember(group, memberId), request.sessionTimeoutMs);
      timer.unref();
      group.pendingMembers.set(memberId, timer);
      throw new ConcordatError(`group '${group.groupId}' requires a member ID: join again with ${memberId}`, {
        code: ErrorCode.MEMBER_ID_REQUIRED,
        context: { memberId },
      });
    }
    return this.addMemberAndRebalance(group, memberId, request);
  }

  private joinKnownMember(group: Group, request: JoinGroupRequest): Promise<JoinGroupResult> {
    this.checkProtocols(group, request);
    this.checkFenced(group, request.memberId, request.groupInstanceId);
    if (group.pendingMembers.has(request.memberId)) return this.addMemberAndRebalance(group, request.memberId, request);
    const member = group.members.get(request.memberId);
    if (member === undefined) throw unknownMember(group, request.memberId);
    if (request.groupInstanceId != null && group.staticMember(request.groupInstanceId) === undefined) {
      // A static member the group does not know under this instance ID: it must join afresh (Kafka's groupInstanceIdNotFound).
      throw groupError(
        ErrorCode.UNKNOWN_MEMBER_ID,
        `group '${group.groupId}' has no static member '${request.groupInstanceId}' with ID ${request.memberId}; join again without a member ID`,
      );
    }
    switch (group.state) {
      case GroupState.PREPARING_REBALANCE:
        return this.updateMemberAndRebalance(group, member, request);
      case GroupState.COMPLETING_REBALANCE:
        if (member.matches(request.protocols)) return Promise.resolve(this.joinResult(group, member));
        return this.updateMemberAndRebalance(group, member, request);
      case GroupState.STABLE:
        if (group.leaderId === member.memberId || !member.matches(request.protocols)) {
          return this.updateMemberAndRebalance(group, member, request);
        }
        return Promise.resolve({ ...this.joinResult(group, member), members: [] });
      default:
        throw unknownMember(group, request.memberId);
    }
  }

  private checkProtocols(group: Group, request: JoinGroupRequest): void {
    if (!group.supportsProtocols(request.protocolType, new Set(request.protocols.map((p) => p.name)))) {
      throw groupError(
        ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
        `group '${group.groupId}' uses protocol type '${group.protocolType}' with protocols ` +
          `[${[...group.candidateProtocols()].join(', ')}]; the member offers '${request.protocolType}' ` +
          `[${request.protocols.map((p) => p.name).join(', ')}]`,
      );
    }
  }

  private addMemberAndRebalance(group: Group, memberId: string, request: JoinGroupRequest): Promise<JoinGroupResult> {
    const member = new Member(
      memberId,
      request.groupInstanceId ?? null,
      request.clientId ?? '',
      request.clientHost ?? '',
      request.sessionTimeoutMs,
      request.rebalanceTimeoutMs,
      request.protocolType,
      request.protocols,
    );
    member.isNew = true;
    if (group.is(GroupState.PREPARING_REBALANCE) && group.generationId === 0) group.newMemberAdded = true;
    group.add(member);
    member.joinWaiter = new Deferred<JoinGroupResult>();
    // The rebalance may complete inside maybePrepareRebalance (a lone member), which clears joinWaiter.
    const joined = member.joinWaiter.promise;
    const pending = group.pendingMembers.get(memberId);
    if (pending !== undefined) {
      clearTimeout(pending);
      group.pendingMembers.delete(memberId);
    }
    this.scheduleExpiry(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS);
    this.maybePrepareRebalance(group, `member ${memberId} joined`);
    return joined;
  }

  private updateMemberAndRebalance(group: Group, member: Member, request: JoinGroupRequest): Promise<JoinGroupResult> {
    member.protocols = request.protocols;
    member.sessionTimeoutMs = request.sessionTimeoutMs;
    member.rebalanceTimeoutMs = request.rebalanceTimeoutMs;
    member.joinWaiter?.reject(groupError(ErrorCode.REBALANCE_IN_PROGRESS, `a newer JoinGroup of member ${member.memberId} replaced this one`));
    member.joinWaiter = new Deferred<JoinGroupResult>();
    const joined = member.joinWaiter.promise;
    this.maybePrepareRebalance(group, `member ${member.memberId} rejoined`);
    return joined;
  }

  /**
   * Kafka's updateStaticMemberAndRebalance: a static member that restarted
   * takes its old member's place and assignment under a new member ID; the
   * old ID is fenced.
   */
  private replaceStaticMember(group: Group, previous: Member, memberId: string, request: JoinGroupRequest): Promise<JoinGroupResult> {
    const member = new Member(
      memberId,
      previous.groupInstanceId,
      request.clientId ?? '',
      request.clientHost ?? '',
      request.sessionTimeoutMs,
      request.rebalanceTimeoutMs,
      request.protocolType,
      request.protocols,
    );
    member.assignment = previous.assignment;
    const leaderBefore = group.leaderId;
    previous.clearExpiry();
    const fenced = fencedError(group, previous.memberId, previous.groupInstanceId!);
    previous.joinWaiter?.reject(fenced);
    previous.syncWaiter?.reject(fenced);
    previous.joinWaiter = null;
    previous.syncWaiter = null;
    group.replaceStaticMember(previous.memberId, member);
    this.scheduleExpiry(group, member, member.sessionTimeoutMs);
    this.logger.info(
      { groupId: group.groupId, groupInstanceId: member.groupInstanceId, memberId, replaced: previous.memberId, state: group.state },
      'static member rejoined under a new member ID; the old one is fenced',
    );
    if (group.is(GroupState.STABLE) && group.selectProtocol() === group.protocolName) {
      // No rebalance: the current generation, and the current leader so that this member does not assign.
      const result: JoinGroupResult = {
        generationId: group.generationId,
        protocolType: group.protocolType,
        protocolName: group.protocolName,
        leader: leaderBefore ?? '',
        memberId,
        members: [],
      };
      const generation = group.generationId;
      return this.storeMembership(group).then(
        () => result,
        (error: unknown) => {
          throw this.membershipStoreFailed(group, generation, error);
        },
      );
    }
    member.joinWaiter = new Deferred<JoinGroupResult>();
    const joined = member.joinWaiter.promise;
    if (group.is(GroupState.STABLE) || group.is(GroupState.COMPLETING_REBALANCE)) {
      // Stable with a protocol change, or CompletingRebalance (the leader may be assigning the old member ID).
      this.prepareRebalance(group, `static member '${member.groupInstanceId}' rejoined as ${memberId}`);
    }
    return joined;
  }

  private joinResult(group: Group, member: Member): JoinGroupResult {
    return {
      generationId: group.generationId,
      protocolType: group.protocolType,
      protocolName: group.protocolName,
      leader: group.leaderId ?? '',
      memberId: member.memberId,
      members: group.leaderId === member.memberId ? group.currentMemberMetadata() : [],
    };
  }

  // ------------------------------------------------------------------ rebalance

  private maybePrepareRebalance(group: Group, reason: string): void {
    if (group.is(GroupState.STABLE) || group.is(GroupState.COMPLETING_REBALANCE) || group.is(GroupState.EMPTY)) {
      this.prepareRebalance(group, reason);
    }
  }

  private prepareRebalance(group: Group, reason: string): void {
    if (group.is(GroupState.COMPLETING_REBALANCE)) this.resetAssignments(group, ErrorCode.REBALANCE_IN_PROGRESS);
    const wasEmpty = group.is(GroupState.EMPTY);
    group.transitionTo(GroupState.PREPARING_REBALANCE);
    this.logger.info({ groupId: group.groupId, generationId: group.generationId, reason }, 'preparing to rebalance');
    const delay = this.options.initialRebalanceDelayMs;
    if (wasEmpty && delay > 0) {
      this.startInitialDelay(group, delay, Math.max(group.rebalanceTimeoutMs() - delay, 0));
    } else {
      this.setJoinTimer(group, group.rebalanceTimeoutMs(), () => this.completeJoin(group));
      this.tryCompleteJoin(group);
    }
    for (const listener of this.listeners.get(group.groupId) ?? []) listener();
  }

  /** Kafka's InitialDelayedJoin: wait `delayMs`, again while new members keep arriving, up to the rebalance timeout. */
  private startInitialDelay(group: Group, delayMs: number, remainingMs: number): void {
    group.initialDelayActive = true;
    this.setJoinTimer(group, delayMs, () => {
      if (group.newMemberAdded && remainingMs > 0) {
        group.newMemberAdded = false;
        const next = Math.min(this.options.initialRebalanceDelayMs, remainingMs);
        this.startInitialDelay(group, next, remainingMs - next);
        return;
      }
      group.initialDelayActive = false;
      this.completeJoin(group);
    });
  }

  private setJoinTimer(group: Group, delayMs: number, fire: () => void): void {
    if (group.joinTimer !== null) clearTimeout(group.joinTimer);
    group.joinTimer = setTimeout(() => {
      group.joinTimer = null;
      fire();
    }, delayMs);
  }

  private tryCompleteJoin(group: Group): void {
    if (group.is(GroupState.PREPARING_REBALANCE) && !group.initialDelayActive && group.allMembersJoined()) this.completeJoin(group);
  }

  /** Kafka's onCompleteJoin: drop members that did not rejoin, start the next generation, answer the joins. */
  private completeJoin(group: Group): void {
    if (!group.is(GroupState.PREPARING_REBALANCE)) return;
    if (group.joinTimer !== null) clearTimeout(group.joinTimer);
    group.joinTimer = null;
    group.initialDelayActive = false;
    for (const member of [...group.members.values()]) {
      // A static member that did not rejoin stays, with its assignment, until its session expires (KIP-345).
      if (member.joinWaiter === null && !member.isStatic) {
        member.clearExpiry();
        member.syncWaiter?.reject(unknownMember(group, member.memberId));
        group.remove(member.memberId);
        this.logger.info({ groupId: group.groupId, memberId: member.memberId }, 'member did not rejoin in time; removed');
      }
    }
    if (group.members.size > 0 && !group.electJoinedLeader()) {
      // Only static members that have not rejoined are left: wait again, until they rejoin or their sessions expire.
      this.logger.info({ groupId: group.groupId, members: group.members.size }, 'no member rejoined; waiting another rebalance timeout');
      this.setJoinTimer(group, group.rebalanceTimeoutMs(), () => this.completeJoin(group));
      return;
    }
    group.initNextGeneration();
    this.logger.info({ groupId: group.groupId, generationId: group.generationId, members: group.members.size, state: group.state }, 'rebalance complete');
    if (group.is(GroupState.EMPTY)) {
      if (group.metadataStored) this.forgetMembership(group);
      if (!this.offsets.hasOffsets(group.groupId) && !group.metadataStored) this.groups.delete(group.groupId);
      return;
    }
    for (const member of group.members.values()) {
      const waiter = member.joinWaiter;
      member.joinWaiter = null;
      member.isNew = false;
      this.scheduleExpiry(group, member, member.sessionTimeoutMs);
      waiter?.resolve(this.joinResult(group, member));
    }
  }

  private resetAssignments(group: Group, code: ErrorCode): void {
    for (const member of group.members.values()) {
      member.assignment = EMPTY_BYTES;
      const waiter = member.syncWaiter;
      member.syncWaiter = null;
      waiter?.reject(groupError(code, `group '${group.groupId}' started another rebalance; join again`));
    }
  }

  // ------------------------------------------------------------------ SyncGroup

  /**
   * Kafka's SyncGroup. The leader's call carries the assignment and makes
   * the group Stable; followers wait for it.
   * @throws ConcordatError UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS,
   *   INCONSISTENT_GROUP_PROTOCOL, COORDINATOR_NOT_AVAILABLE
   */
  syncGroup(request: SyncGroupRequest): Promise<SyncGroupResult> {
    try {
      this.checkOpen();
      checkGroupId(request.groupId);
      this.checkFenced(this.groups.get(request.groupId), request.memberId, request.groupInstanceId);
      const { group, member } = this.memberOf(request.groupId, request.memberId, request.generationId);
      if (
        (request.protocolType != null && request.protocolType !== group.protocolType) ||
        (request.protocolName != null && request.protocolName !== group.protocolName)
      ) {
        throw groupError(
          ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
          `group '${group.groupId}' uses ${group.protocolType}/${group.protocolName}, not ${request.protocolType}/${request.protocolName}`,
        );
      }
      switch (group.state) {
        case GroupState.PREPARING_REBALANCE:
          throw groupError(ErrorCode.REBALANCE_IN_PROGRESS, `group '${group.groupId}' is rebalancing; join again`);
        case GroupState.COMPLETING_REBALANCE:
          return this.awaitAssignment(group, member, request);
        case GroupState.STABLE:
          this.scheduleExpiry(group, member, member.sessionTimeoutMs);
          return Promise.resolve(this.syncResult(group, member));
        default:
          throw unknownMember(group, member.memberId);
      }
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private awaitAssignment(group: Group, member: Member, request: SyncGroupRequest): Promise<SyncGroupResult> {
    member.syncWaiter?.reject(groupError(ErrorCode.REBALANCE_IN_PROGRESS, `a newer SyncGroup of member ${member.memberId} replaced this one`));
    member.syncWaiter = new Deferred<SyncGroupResult>();
    const promise = member.syncWaiter.promise;
    if (group.leaderId === member.memberId) {
      const assignments = new Map(request.assignments.map((a) => [a.memberId, a.assignment]));
      if (!group.hasStaticMembers() && !group.metadataStored) {
        this.completeSync(group, assignments);
        return promise;
      }
      // A group with static members: its membership is stored before the generation becomes Stable (Kafka's storeGroup).
      const generation = group.generationId;
      this.storeMembership(group, assignments).then(
        () => {
          if (group.is(GroupState.COMPLETING_REBALANCE) && group.generationId === generation) this.completeSync(group, assignments);
        },
        (error: unknown) => {
          if (!group.is(GroupState.COMPLETING_REBALANCE) || group.generationId !== generation) return;
          const failure = this.membershipStoreFailed(group, generation, error);
          for (const each of group.members.values()) {
            const waiter = each.syncWaiter;
            each.syncWaiter = null;
            waiter?.reject(failure);
          }
          this.prepareRebalance(group, 'the assignment could not be stored');
        },
      );
    }
    return promise;
  }

  /** Sets every member's assignment, makes the group Stable and answers the waiting SyncGroups. */
  private completeSync(group: Group, assignments: ReadonlyMap<string, Buffer>): void {
    for (const each of group.members.values()) each.assignment = assignments.get(each.memberId) ?? EMPTY_BYTES;
    group.transitionTo(GroupState.STABLE);
    for (const each of group.members.values()) {
      const waiter = each.syncWaiter;
      each.syncWaiter = null;
      if (waiter !== null) {
        this.scheduleExpiry(group, each, each.sessionTimeoutMs);
        waiter.resolve(this.syncResult(group, each));
      }
    }
  }

  // ------------------------------------------------------------------ stored membership (static groups)

  /**
   * Writes the group's membership to the offset store: its members with
   * `assignments` (default: their current ones). Resolves once durable.
   */
  private async storeMembership(group: Group, assignments?: ReadonlyMap<string, Buffer>): Promise<void> {
    const metadata: StoredGroupMetadata = {
      gen: group.generationId,
      pt: group.protocolType ?? '',
      pn: group.protocolName ?? '',
      l: group.leaderId ?? '',
      mem: [...group.members.values()].map((m) => [
        m.memberId,
        m.groupInstanceId,
        m.clientId,
        m.clientHost,
        m.sessionTimeoutMs,
        m.rebalanceTimeoutMs,
        m.protocols.map((p): [string, string] => [p.name, p.metadata.toString('base64')]),
        (assignments === undefined ? m.assignment : (assignments.get(m.memberId) ?? EMPTY_BYTES)).toString('base64'),
      ]),
    };
    group.metadataStored = true;
    await this.offsets.storeGroupMetadata(group.groupId, metadata);
  }

  /** The group has no members any more: its stored membership goes (in the background; a failure is logged). */
  private forgetMembership(group: Group): void {
    group.metadataStored = false;
    this.offsets.storeGroupMetadata(group.groupId, null).catch((error: unknown) => {
      this.logger.warn({ groupId: group.groupId, error: (error as Error).message }, 'could not remove the stored membership of an empty group');
    });
  }

  private membershipStoreFailed(group: Group, generation: number, error: unknown): ConcordatError {
    this.logger.error({ groupId: group.groupId, generationId: generation, error: (error as Error).message }, 'could not store group membership');
    return new ConcordatError(`group '${group.groupId}': its membership could not be stored (${(error as Error).message}); join again`, {
      code: ErrorCode.COORDINATOR_NOT_AVAILABLE,
      cause: error,
    });
  }

  /** Rebuilds a group stored with its membership: Stable, each member's session counting from now. */
  private loadStoredGroup(groupId: string, stored: StoredGroupMetadata): void {
    const group = new Group(groupId);
    if (stored.mem.length === 0) {
      this.groups.set(groupId, group);
      return;
    }
    group.generationId = stored.gen;
    group.protocolType = stored.pt;
    group.protocolName = stored.pn;
    for (const [memberId, instanceId, clientId, clientHost, sessionTimeoutMs, rebalanceTimeoutMs, protocols, assignment] of stored.mem) {
      const member = new Member(
        memberId,
        instanceId,
        clientId,
        clientHost,
        sessionTimeoutMs,
        rebalanceTimeoutMs,
        stored.pt,
        protocols.map(([name, metadata]) => ({ name, metadata: Buffer.from(metadata, 'base64') })),
      );
      member.assignment = Buffer.from(assignment, 'base64');
      group.add(member);
      this.scheduleExpiry(group, member, sessionTimeoutMs);
    }
    group.leaderId = group.members.has(stored.l) ? stored.l : group.leaderId;
    group.state = GroupState.STABLE;
    group.metadataStored = true;
    this.groups.set(groupId, group);
  }

  private syncResult(group: Group, member: Member): SyncGroupResult {
    return { protocolType: group.protocolType, protocolName: group.protocolName, assignment: member.assignment };
  }

  // ------------------------------------------------------------------ Heartbeat, LeaveGroup

  /**
   * Kafka's Heartbeat: keeps the member's session alive.
   * @throws ConcordatError UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS
   *   (PreparingRebalance: the member must rejoin), COORDINATOR_NOT_AVAILABLE
   */
  async heartbeat(request: HeartbeatRequest): Promise<void> {
    this.checkOpen();
    checkGroupId(request.groupId);
    this.checkFenced(this.groups.get(request.groupId), request.memberId, request.groupInstanceId);
    const { group, member } = this.memberOf(request.groupId, request.memberId, request.generationId);
    if (group.is(GroupState.EMPTY)) throw unknownMember(group, member.memberId);
    this.scheduleExpiry(group, member, member.sessionTimeoutMs);
    if (group.is(GroupState.PREPARING_REBALANCE)) {
      throw groupError(ErrorCode.REBALANCE_IN_PROGRESS, `group '${group.groupId}' is rebalancing; join again`);
    }
  }

  /**
   * Kafka's LeaveGroup (v3: several members). Per-member errors in the
   * result: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID (the instance ID belongs to
   * another member ID). A member named by groupInstanceId (member ID '' or
   * its current one) is the static member holding it.
   */
  async leaveGroup(request: LeaveGroupRequest): Promise<LeaveGroupResult> {
    this.checkOpen();
    checkGroupId(request.groupId);
    const group = this.groups.get(request.groupId);
    const members = request.members.map(({ memberId, groupInstanceId }) => ({
      memberId,
      groupInstanceId: groupInstanceId ?? null,
      errorCode: group === undefined ? ErrorCode.UNKNOWN_MEMBER_ID : this.leaveOne(group, memberId, groupInstanceId ?? null),
    }));
    return { members };
  }

  private leaveOne(group: Group, memberId: string, groupInstanceId: string | null): ErrorCode | null {
    if (memberId !== '' && group.isStaticMemberFenced(memberId, groupInstanceId)) return ErrorCode.FENCED_INSTANCE_ID;
    const byInstance = group.staticMember(groupInstanceId);
    if (byInstance !== undefined) {
      this.logger.info({ groupId: group.groupId, memberId: byInstance.memberId, groupInstanceId }, 'static member left');
      this.removeMember(group, byInstance);
      return null;
    }
    const pending = group.pendingMembers.get(memberId);
    if (pending !== undefined) {
      clearTimeout(pending);
      group.pendingMembers.delete(memberId);
      this.tryCompleteJoin(group);
      return null;
    }
    const member = group.members.get(memberId);
    if (member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
    this.logger.info({ groupId: group.groupId, memberId }, 'member left');
    this.removeMember(group, member);
    return null;
  }

  /** Kafka's removeMemberAndUpdateGroup. */
  private removeMember(group: Group, member: Member): void {
    member.clearExpiry();
    const joinWaiter = member.joinWaiter;
    const syncWaiter = member.syncWaiter;
    member.joinWaiter = null;
    member.syncWaiter = null;
    joinWaiter?.reject(unknownMember(group, member.memberId));
    syncWaiter?.reject(unknownMember(group, member.memberId));
    group.remove(member.memberId);
    if (group.is(GroupState.STABLE) || group.is(GroupState.COMPLETING_REBALANCE)) {
      this.maybePrepareRebalance(group, `member ${member.memberId} left`);
    } else if (group.is(GroupState.PREPARING_REBALANCE)) {
      this.tryCompleteJoin(group);
    }
  }

  private scheduleExpiry(group: Group, member: Member, timeoutMs: number): void {
    member.clearExpiry();
    member.expiryTimer = setTimeout(() => this.expireMember(group, member), timeoutMs);
    member.expiryTimer.unref();
  }

  private expireMember(group: Group, member: Member): void {
    member.expiryTimer = null;
    if (group.members.get(member.memberId) !== member) return;
    if (member.joinWaiter !== null && !member.isNew) {
      // Waiting in JoinGroup: the rebalance timeout bounds it, not the session.
      this.scheduleExpiry(group, member, member.sessionTimeoutMs);
      return;
    }
    this.logger.info({ groupId: group.groupId, memberId: member.memberId }, 'member session expired; removed');
    this.removeMember(group, member);
  }

  private expirePendingMember(group: Group, memberId: string): void {
    if (!group.pendingMembers.delete(memberId)) return;
    this.tryCompleteJoin(group);
  }

  // ------------------------------------------------------------------ offsets

  /**
   * Kafka's OffsetCommit. Resolves after the offsets are durable.
   * @throws ConcordatError (whole request) UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS,
   *   COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR; per partition in the result:
   *   OFFSET_METADATA_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION
   */
  async commitOffsets(request: OffsetCommitRequest): Promise<OffsetCommitResult> {
    this.checkOpen();
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
    if (entries.length > 0) await this.offsets.commit(request.groupId, entries);
    return { topics };
  }

  /**
   * Offsets committed by a Kafka transaction (TxnOffsetCommit), written when
   * the transaction coordinator completes the commit: no membership check
   * (the producer is not a member; Kafka's TxnOffsetCommit v0-2 carries no
   * generation either). Resolves after they are durable. Partitions whose
   * topic no longer exists are skipped.
   * @throws ConcordatError COORDINATOR_NOT_AVAILABLE (closed), KAFKA_STORAGE_ERROR
   */
  async commitTransactionalOffsets(
    groupId: string,
    offsets: readonly { topic: string; partition: number; offset: number; leaderEpoch: number; metadata: string }[],
  ): Promise<void> {
    this.checkOpen();
    const now = Date.now();
    const entries = offsets
      .filter((o) => this.checkCommittedPartition(o.topic, o.partition, '') === null)
      .map((o): OffsetEntry => ({ ...o, commitTimestampMs: now }));
    // A transaction's outcome must not fail on a bound: past groupsMax the group shows up after the next open.
    if (!this.groups.has(groupId) && this.groups.size < this.options.groupsMax) this.groups.set(groupId, new Group(groupId));
    if (entries.length > 0) await this.offsets.commit(groupId, entries);
  }

  private checkCommitMembership(request: OffsetCommitRequest): void {
    let group = this.groups.get(request.groupId);
    if (group === undefined) {
      if (request.generationId >= 0) {
        throw groupError(ErrorCode.ILLEGAL_GENERATION, `group '${request.groupId}' has no generation ${request.generationId}`);
      }
      group = this.createGroup(request.groupId);
    }
    if (group.is(GroupState.DEAD)) throw groupError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `group '${request.groupId}' is being removed; retry`);
    if (request.generationId < 0 && group.is(GroupState.EMPTY)) return;
    this.checkFenced(group, request.memberId, request.groupInstanceId);
    const { member } = this.memberOf(request.groupId, request.memberId, request.generationId);
    if (group.is(GroupState.COMPLETING_REBALANCE)) {
      throw groupError(ErrorCode.REBALANCE_IN_PROGRESS, `group '${group.groupId}' is completing a rebalance; commit after SyncGroup`);
    }
    this.scheduleExpiry(group, member, member.sessionTimeoutMs);
  }

  private checkCommittedPartition(topic: string, partition: number, metadata: string): ErrorCode | null {
    if (Buffer.byteLength(metadata, 'utf8') > this.options.offsetMetadataMaxBytes) return ErrorCode.OFFSET_METADATA_TOO_LARGE;
    const partitions = this.topics.partitionCount(topic);
    if (partitions === undefined || !Number.isInteger(partition) || partition < 0 || partition >= partitions) {
      return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
    }
    return null;
  }

  /** Kafka's OffsetFetch: committed offsets, -1 where none, whatever the group's state. */
  async fetchOffsets(request: OffsetFetchRequest): Promise<OffsetFetchResult> {
    this.checkOpen();
    checkGroupId(request.groupId, true);
    if (request.topics === null) {
      const byTopic = new Map<string, OffsetFetchResult['topics'][number]['partitions']>();
      for (const entry of this.offsets.list(request.groupId)) {
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
          const entry = this.offsets.get(request.groupId, topic, partition);
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

  /**
   * Consumer lag of a group on every partition it committed, or on the
   * partitions of `topics` when given (all partitions of each).
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION for a named topic that does not exist
   */
  lag(groupId: string, topics?: readonly string[]): PartitionLag[] {
    const pairs: [string, number][] = [];
    if (topics === undefined) {
      for (const entry of this.offsets.list(groupId)) pairs.push([entry.topic, entry.partition]);
    } else {
      for (const topic of topics) {
        const count = this.topics.partitionCount(topic);
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
      .filter(([topic, partition]) => (this.topics.partitionCount(topic) ?? 0) > partition)
      .map(([topic, partition]) => {
        const { logStartOffset, highWatermark } = this.topics.describePartition(topic, partition);
        const committedOffset = this.offsets.get(groupId, topic, partition)?.offset ?? -1;
        const from = Math.max(committedOffset, logStartOffset);
        return { topic, partition, committedOffset, logStartOffset, highWatermark, lag: Math.max(0, highWatermark - from) };
      });
  }

  /**
   * Offset retention (Kafka's offsets.retention.minutes, KIP-211): the
   * offsets of a group without members are deleted once both its last
   * commit and the moment it became empty are older than offsetsRetentionMs.
   * Returns the groups whose offsets went.
   */
  async expireOffsets(nowMs: number): Promise<string[]> {
    if (this.closed) return [];
    const expired: string[] = [];
    for (const groupId of this.offsets.groupIds()) {
      const group = this.groups.get(groupId);
      if (group !== undefined && !group.is(GroupState.EMPTY)) continue;
      const since = Math.max(this.offsets.lastCommitMs(groupId), group?.emptySinceMs ?? -1);
      if (nowMs - since <= this.options.offsetsRetentionMs) continue;
      await this.offsets.deleteGroup(groupId);
      if (group !== undefined && group.is(GroupState.EMPTY)) {
        group.transitionTo(GroupState.DEAD);
        this.groups.delete(groupId);
      }
      expired.push(groupId);
      this.logger.info({ groupId }, 'committed offsets expired (offsetsRetentionMs)');
    }
    return expired;
  }

  /** Counters of the committed-offsets log (writes, records, compactions). */
  offsetStoreStats(): Readonly<{ writes: number; records: number; compactions: number }> {
    return { ...this.offsets.stats };
  }

  /** Forgets the offsets of a deleted topic (Kafka's handleDeletedPartitions). */
  async removeTopicOffsets(topic: string): Promise<void> {
    await this.offsets.removeTopic(topic);
  }

  // ------------------------------------------------------------------ admin

  /** Kafka's DescribeGroups for one group; an unknown group is reported Dead with no members. */
  describeGroup(groupId: string): GroupDescription {
    const group = this.groups.get(groupId);
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
    return [...this.groups.values()].map((group) => ({ groupId: group.groupId, protocolType: group.protocolType ?? '', state: group.state }));
  }

  /** Kafka's DeleteGroups: only Empty groups; their offsets go too. */
  async deleteGroups(groupIds: readonly string[]): Promise<{ groupId: string; errorCode: ErrorCode | null }[]> {
    this.checkOpen();
    const results: { groupId: string; errorCode: ErrorCode | null }[] = [];
    for (const groupId of groupIds) {
      const group = this.groups.get(groupId);
      if (group === undefined) {
        results.push({ groupId, errorCode: ErrorCode.GROUP_ID_NOT_FOUND });
      } else if (!group.is(GroupState.EMPTY)) {
        results.push({ groupId, errorCode: ErrorCode.NON_EMPTY_GROUP });
      } else {
        group.transitionTo(GroupState.DEAD);
        this.groups.delete(groupId);
        await this.offsets.deleteGroup(groupId);
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
  async deleteOffsets(
    groupId: string,
    partitions: readonly { topic: string; partition: number }[],
  ): Promise<{ topic: string; partition: number; errorCode: ErrorCode | null }[]> {
    this.checkOpen();
    const group = this.groups.get(groupId);
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
    await this.offsets.removeOffsets(groupId, eligible);
    return partitions.map((p) => ({ ...p, errorCode: subscribed(p.topic) ? ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC : null }));
  }

  /**
   * In-process hint: `listener` runs when the group starts a rebalance, so a
   * member in this process can rejoin without waiting for its next
   * heartbeat. Returns the unsubscribe function. Network members learn it
   * from Heartbeat as usual.
   */
  onRebalance(groupId: string, listener: () => void): () => void {
    let set = this.listeners.get(groupId);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(groupId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(groupId);
    };
  }

  /** Fails waiting joins and syncs with COORDINATOR_NOT_AVAILABLE, stops timers, waits for offset writes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = groupError(ErrorCode.COORDINATOR_NOT_AVAILABLE, 'the group coordinator is closed');
    for (const group of this.groups.values()) {
      if (group.joinTimer !== null) clearTimeout(group.joinTimer);
      for (const timer of group.pendingMembers.values()) clearTimeout(timer);
      for (const member of group.members.values()) {
        member.clearExpiry();
        member.joinWaiter?.reject(error);
        member.syncWaiter?.reject(error);
      }
      group.state = GroupState.DEAD;
    }
    this.groups.clear();
    this.listeners.clear();
    await this.offsets.close();
  }

  /** FENCED_INSTANCE_ID when `groupInstanceId` belongs to another member ID of the group (Kafka's isStaticMemberFenced). */
  private checkFenced(group: Group | undefined, memberId: string, groupInstanceId: string | null | undefined): void {
    if (group !== undefined && group.isStaticMemberFenced(memberId, groupInstanceId)) {
      throw fencedError(group, memberId, groupInstanceId!);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw groupError(ErrorCode.COORDINATOR_NOT_AVAILABLE, 'the group coordinator is closed');
  }

  /** The group and member a request names, checking member then generation (Kafka's order). */
  private memberOf(groupId: string, memberId: string, generationId: number): { group: Group; member: Member } {
    const group = this.groups.get(groupId);
    if (group === undefined) throw groupError(ErrorCode.UNKNOWN_MEMBER_ID, `member ${memberId} is not in group '${groupId}' (no such group)`);
    if (group.is(GroupState.DEAD)) throw groupError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `group '${groupId}' is being removed; retry`);
    const member = group.members.get(memberId);
    if (member === undefined) throw unknownMember(group, memberId);
    if (generationId !== group.generationId) {
      throw groupError(ErrorCode.ILLEGAL_GENERATION, `group '${groupId}' is at generation ${group.generationId}, not ${generationId}`);
    }
    return { group, member };
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

function checkGroupId(groupId: string, allowEmpty = false): void {
  if ((groupId.length === 0 && !allowEmpty) || groupId.length > GROUP_ID_LENGTH_MAX) {
    throw groupError(ErrorCode.INVALID_GROUP_ID, `group ID must be 1..${GROUP_ID_LENGTH_MAX} characters, got ${groupId.length}`);
  }
}

function unknownMember(group: Group, memberId: string): ConcordatError {
  return groupError(ErrorCode.UNKNOWN_MEMBER_ID, `member ${memberId} is not in group '${group.groupId}'`);
}

function fencedError(group: Group, memberId: string, groupInstanceId: string): ConcordatError {
  return groupError(
    ErrorCode.FENCED_INSTANCE_ID,
    `member ${memberId} of group '${group.groupId}' is fenced: static member '${groupInstanceId}' has rejoined as ` +
      `${group.staticMembers.get(groupInstanceId) ?? 'another member'} (a restarted or duplicate instance); stop this one`,
  );
}

/** A ConcordatError with `code`, retriable as the error table says for it (REBALANCE_IN_PROGRESS and COORDINATOR_NOT_AVAILABLE are). */
function groupError(code: ErrorCode, message: string): ConcordatError {
  return new ConcordatError(message, { code });
}
