/**
 * SyncGroup (Kafka's handleSyncGroup): the leader's assignment makes the
 * group Stable (stored first for a group with static members), and the
 * followers waiting for it get theirs.
 */
import { ErrorCode } from '../../errors.js';
import type { CoordinatorState } from './coordinator-state.js';
import { checkGroupId, groupError, unknownMember } from './group-errors.js';
import { Deferred, EMPTY_BYTES, GroupState, type Group, type Member, type SyncGroupResult } from './group.js';
import type { Rebalancer } from './rebalance.js';
import type { SyncGroupRequest } from './requests.js';
import type { StoredMembership } from './stored-membership.js';

/** Handles the coordinator's SyncGroup requests. */
export class SyncGroupHandler {
  /** Works on `state`'s groups; rebalances through `rebalancer`. */
  constructor(
    private readonly state: CoordinatorState,
    private readonly rebalancer: Rebalancer,
    private readonly stored: StoredMembership,
  ) {}

  /** `GroupCoordinator.syncGroup` (its doc there is the contract). */
  syncGroup(request: SyncGroupRequest): Promise<SyncGroupResult> {
    try {
      this.state.checkOpen();
      checkGroupId(request.groupId);
      this.state.checkFenced(this.state.groups.get(request.groupId), request.memberId, request.groupInstanceId);
      const { group, member } = this.state.memberOf(request.groupId, request.memberId, request.generationId);
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
          this.rebalancer.scheduleExpiry(group, member, member.sessionTimeoutMs);
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
      this.stored.storeMembership(group, assignments).then(
        () => {
          if (group.is(GroupState.COMPLETING_REBALANCE) && group.generationId === generation) this.completeSync(group, assignments);
        },
        (error: unknown) => {
          if (!group.is(GroupState.COMPLETING_REBALANCE) || group.generationId !== generation) return;
          const failure = this.stored.membershipStoreFailed(group, generation, error);
          for (const each of group.members.values()) {
            const waiter = each.syncWaiter;
            each.syncWaiter = null;
            waiter?.reject(failure);
          }
          this.rebalancer.prepareRebalance(group, 'the assignment could not be stored');
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
        this.rebalancer.scheduleExpiry(group, each, each.sessionTimeoutMs);
        waiter.resolve(this.syncResult(group, each));
      }
    }
  }

  private syncResult(group: Group, member: Member): SyncGroupResult {
    return { protocolType: group.protocolType, protocolName: group.protocolName, assignment: member.assignment };
  }
}
