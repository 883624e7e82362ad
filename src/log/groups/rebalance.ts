/**
 * The group state machine's moves: a rebalance starts (PreparingRebalance,
 * with its join timer or Kafka's initial delay), completes (the next
 * generation, CompletingRebalance) or is abandoned; and a member leaves it,
 * by LeaveGroup or when its session expires, which starts the next one.
 */
import { ErrorCode } from '../../errors.js';
import type { CoordinatorState } from './coordinator-state.js';
import { groupError, unknownMember } from './group-errors.js';
import { EMPTY_BYTES, GroupState, type Group, type JoinGroupResult, type Member } from './group.js';
import type { StoredMembership } from './stored-membership.js';

/** Rebalances and member removal of the coordinator's groups, with their timers. */
export class Rebalancer {
  /** Works on `state`'s groups; forgets the stored membership of a group that empties. */
  constructor(
    private readonly state: CoordinatorState,
    private readonly stored: StoredMembership,
  ) {}

  /** JoinGroup's answer to `member` for the group's current generation (the member list goes to the leader only). */
  joinResult(group: Group, member: Member): JoinGroupResult {
    return {
      generationId: group.generationId,
      protocolType: group.protocolType,
      protocolName: group.protocolName,
      leader: group.leaderId ?? '',
      memberId: member.memberId,
      members: group.leaderId === member.memberId ? group.currentMemberMetadata() : [],
    };
  }

  /** Starts a rebalance unless one is under way (or the group is Dead). */
  maybePrepareRebalance(group: Group, reason: string): void {
    if (group.is(GroupState.STABLE) || group.is(GroupState.COMPLETING_REBALANCE) || group.is(GroupState.EMPTY)) {
      this.prepareRebalance(group, reason);
    }
  }

  /** Kafka's prepareRebalance: PreparingRebalance, the join timer (or the initial delay of an Empty group), the in-process listeners told. */
  prepareRebalance(group: Group, reason: string): void {
    if (group.is(GroupState.COMPLETING_REBALANCE)) this.resetAssignments(group, ErrorCode.REBALANCE_IN_PROGRESS);
    const wasEmpty = group.is(GroupState.EMPTY);
    group.transitionTo(GroupState.PREPARING_REBALANCE);
    this.state.logger.info({ groupId: group.groupId, generationId: group.generationId, reason }, 'preparing to rebalance');
    const delay = this.state.options.initialRebalanceDelayMs;
    if (wasEmpty && delay > 0) {
      this.startInitialDelay(group, delay, Math.max(group.rebalanceTimeoutMs() - delay, 0));
    } else {
      this.setJoinTimer(group, group.rebalanceTimeoutMs(), () => this.completeJoin(group));
      this.tryCompleteJoin(group);
    }
    for (const listener of this.state.listeners.get(group.groupId) ?? []) listener();
  }

  /** Kafka's InitialDelayedJoin: wait `delayMs`, again while new members keep arriving, up to the rebalance timeout. */
  private startInitialDelay(group: Group, delayMs: number, remainingMs: number): void {
    group.initialDelayActive = true;
    this.setJoinTimer(group, delayMs, () => {
      if (group.newMemberAdded && remainingMs > 0) {
        group.newMemberAdded = false;
        const next = Math.min(this.state.options.initialRebalanceDelayMs, remainingMs);
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

  /** Completes the join at once when every member has rejoined (and no initial delay runs). */
  tryCompleteJoin(group: Group): void {
    if (group.is(GroupState.PREPARING_REBALANCE) && !group.initialDelayActive && group.allMembersJoined()) this.completeJoin(group);
  }

  /** Kafka's onCompleteJoin: drop members that did not rejoin, start the next generation, answer the joins. */
  completeJoin(group: Group): void {
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
        this.state.logger.info({ groupId: group.groupId, memberId: member.memberId }, 'member did not rejoin in time; removed');
      }
    }
    if (group.members.size > 0 && !group.electJoinedLeader()) {
      // Only static members that have not rejoined are left: wait again, until they rejoin or their sessions expire.
      this.state.logger.info({ groupId: group.groupId, members: group.members.size }, 'no member rejoined; waiting another rebalance timeout');
      this.setJoinTimer(group, group.rebalanceTimeoutMs(), () => this.completeJoin(group));
      return;
    }
    group.initNextGeneration();
    this.state.logger.info({ groupId: group.groupId, generationId: group.generationId, members: group.members.size, state: group.state }, 'rebalance complete');
    if (group.is(GroupState.EMPTY)) {
      if (group.metadataStored) this.stored.forgetMembership(group);
      if (!this.state.offsets.hasOffsets(group.groupId) && !group.metadataStored) this.state.groups.delete(group.groupId);
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

  /** Clears every member's assignment and fails the waiting SyncGroups with `code`. */
  resetAssignments(group: Group, code: ErrorCode): void {
    for (const member of group.members.values()) {
      member.assignment = EMPTY_BYTES;
      const waiter = member.syncWaiter;
      member.syncWaiter = null;
      waiter?.reject(groupError(code, `group '${group.groupId}' started another rebalance; join again`));
    }
  }

  /** Kafka's removeMemberAndUpdateGroup. */
  removeMember(group: Group, member: Member): void {
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

  /** (Re)starts `member`'s session: removed, and the group rebalanced, after `timeoutMs` without a sign of life. */
  scheduleExpiry(group: Group, member: Member, timeoutMs: number): void {
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
    this.state.logger.info({ groupId: group.groupId, memberId: member.memberId }, 'member session expired; removed');
    this.removeMember(group, member);
  }

  /** A member answered MEMBER_ID_REQUIRED did not join again within its session timeout: forgotten. */
  expirePendingMember(group: Group, memberId: string): void {
    if (!group.pendingMembers.delete(memberId)) return;
    this.tryCompleteJoin(group);
  }
}
