/**
 * JoinGroup (Kafka's handleJoinGroup): a new member (with
 * MEMBER_ID_REQUIRED first for v4+), a known member rejoining, and a
 * restarted static member taking its old member's place (KIP-345).
 */
import { randomUUID } from 'node:crypto';
import { ConcordatError, ErrorCode } from '../../errors.js';
import type { CoordinatorState } from './coordinator-state.js';
import { checkGroupId, fencedError, groupError, unknownMember } from './group-errors.js';
import { Deferred, GroupState, Member, type Group, type JoinGroupResult } from './group.js';
import type { Rebalancer } from './rebalance.js';
import type { JoinGroupRequest } from './requests.js';
import type { StoredMembership } from './stored-membership.js';

/** Kafka's NewMemberJoinTimeoutMs: a new member waiting in JoinGroup is dropped after this. */
export const NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000;
const INT32_MAX = 2 ** 31 - 1;

/** Handles the coordinator's JoinGroup requests. */
export class JoinGroupHandler {
  /** Works on `state`'s groups; rebalances through `rebalancer`. */
  constructor(
    private readonly state: CoordinatorState,
    private readonly rebalancer: Rebalancer,
    private readonly stored: StoredMembership,
  ) {}

  /** `GroupCoordinator.joinGroup` (its doc there is the contract). */
  joinGroup(request: JoinGroupRequest): Promise<JoinGroupResult> {
    try {
      this.checkJoinRequest(request);
      const isNew = request.memberId === '';
      let group = this.state.groups.get(request.groupId);
      if (group === undefined) {
        if (!isNew) throw groupError(ErrorCode.UNKNOWN_MEMBER_ID, `member ${request.memberId} is not in group '${request.groupId}' (no such group)`);
        group = this.state.createGroup(request.groupId);
      }
      if (group.is(GroupState.DEAD)) throw groupError(ErrorCode.COORDINATOR_NOT_AVAILABLE, `group '${request.groupId}' is being removed; retry`);
      const returning = group.staticMember(request.groupInstanceId) !== undefined;
      if (isNew && !returning && group.members.size + group.pendingMembers.size >= this.state.options.groupMaxSize) {
        throw groupError(
          ErrorCode.GROUP_MAX_SIZE_REACHED,
          `group '${request.groupId}' has ${this.state.options.groupMaxSize} members (groupMaxSize); raise the log option groups.groupMaxSize`,
        );
      }
      const result = isNew ? this.joinNewMember(group, request) : this.joinKnownMember(group, request);
      if (group.is(GroupState.PREPARING_REBALANCE)) this.rebalancer.tryCompleteJoin(group);
      return result;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private checkJoinRequest(request: JoinGroupRequest): void {
    this.state.checkOpen();
    checkGroupId(request.groupId);
    if (request.groupInstanceId === '') {
      throw groupError(ErrorCode.INVALID_GROUP_ID, 'group.instance.id must not be empty: give one, or none (null) for a dynamic member');
    }
    const { minSessionTimeoutMs, maxSessionTimeoutMs } = this.state.options;
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

  private joinNewMember(group: Group, request: JoinGroupRequest): Promise<JoinGroupResult> {
    this.checkProtocols(group, request);
    const instanceId = request.groupInstanceId ?? null;
    // As Kafka: a static member's ID starts with its instance ID, a dynamic one's with its client ID.
    const memberId = `${instanceId ?? (request.clientId || 'member')}-${randomUUID()}`;
    const previous = group.staticMember(instanceId);
    if (previous !== undefined) return this.replaceStaticMember(group, previous, memberId, request);
    if (request.requireKnownMemberId === true && instanceId === null) {
      const timer = setTimeout(() => this.rebalancer.expirePendingMember(group, memberId), request.sessionTimeoutMs);
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
    this.state.checkFenced(group, request.memberId, request.groupInstanceId);
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
        if (member.matches(request.protocols)) return Promise.resolve(this.rebalancer.joinResult(group, member));
        return this.updateMemberAndRebalance(group, member, request);
      case GroupState.STABLE:
        if (group.leaderId === member.memberId || !member.matches(request.protocols)) {
          return this.updateMemberAndRebalance(group, member, request);
        }
        return Promise.resolve({ ...this.rebalancer.joinResult(group, member), members: [] });
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
    const member = memberOf(request, memberId, request.groupInstanceId ?? null);
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
    this.rebalancer.scheduleExpiry(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS);
    this.rebalancer.maybePrepareRebalance(group, `member ${memberId} joined`);
    return joined;
  }

  private updateMemberAndRebalance(group: Group, member: Member, request: JoinGroupRequest): Promise<JoinGroupResult> {
    member.protocols = request.protocols;
    member.sessionTimeoutMs = request.sessionTimeoutMs;
    member.rebalanceTimeoutMs = request.rebalanceTimeoutMs;
    member.joinWaiter?.reject(groupError(ErrorCode.REBALANCE_IN_PROGRESS, `a newer JoinGroup of member ${member.memberId} replaced this one`));
    member.joinWaiter = new Deferred<JoinGroupResult>();
    const joined = member.joinWaiter.promise;
    this.rebalancer.maybePrepareRebalance(group, `member ${member.memberId} rejoined`);
    return joined;
  }

  /**
   * Kafka's updateStaticMemberAndRebalance: a static member that restarted
   * takes its old member's place and assignment under a new member ID; the
   * old ID is fenced.
   */
  private replaceStaticMember(group: Group, previous: Member, memberId: string, request: JoinGroupRequest): Promise<JoinGroupResult> {
    const member = memberOf(request, memberId, previous.groupInstanceId);
    member.assignment = previous.assignment;
    const leaderBefore = group.leaderId;
    previous.clearExpiry();
    const fenced = fencedError(group, previous.memberId, previous.groupInstanceId!);
    previous.joinWaiter?.reject(fenced);
    previous.syncWaiter?.reject(fenced);
    previous.joinWaiter = null;
    previous.syncWaiter = null;
    group.replaceStaticMember(previous.memberId, member);
    this.rebalancer.scheduleExpiry(group, member, member.sessionTimeoutMs);
    this.state.logger.info(
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
      return this.stored.storeMembership(group).then(
        () => result,
        (error: unknown) => {
          throw this.stored.membershipStoreFailed(group, generation, error);
        },
      );
    }
    member.joinWaiter = new Deferred<JoinGroupResult>();
    const joined = member.joinWaiter.promise;
    if (group.is(GroupState.STABLE) || group.is(GroupState.COMPLETING_REBALANCE)) {
      // Stable with a protocol change, or CompletingRebalance (the leader may be assigning the old member ID).
      this.rebalancer.prepareRebalance(group, `static member '${member.groupInstanceId}' rejoined as ${memberId}`);
    }
    return joined;
  }
}

/** A member for the client that sent `request`, under `memberId` and `groupInstanceId` (null: a dynamic member). */
function memberOf(request: JoinGroupRequest, memberId: string, groupInstanceId: string | null): Member {
  return new Member(
    memberId,
    groupInstanceId,
    request.clientId ?? '',
    request.clientHost ?? '',
    request.sessionTimeoutMs,
    request.rebalanceTimeoutMs,
    request.protocolType,
    request.protocols,
  );
}
