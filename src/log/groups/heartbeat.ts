/**
 * Heartbeat and LeaveGroup (Kafka's handleHeartbeat, handleLeaveGroup): a
 * member keeps its session alive, or ends it.
 */
import { ErrorCode } from '../../errors.js';
import type { CoordinatorState } from './coordinator-state.js';
import { checkGroupId, groupError, unknownMember } from './group-errors.js';
import { GroupState, type Group } from './group.js';
import type { Rebalancer } from './rebalance.js';
import type { HeartbeatRequest, LeaveGroupRequest, LeaveGroupResult } from './requests.js';

/** Handles the coordinator's Heartbeat and LeaveGroup requests. */
export class SessionHandler {
  /** Works on `state`'s groups; a member that leaves is removed through `rebalancer`. */
  constructor(
    private readonly state: CoordinatorState,
    private readonly rebalancer: Rebalancer,
  ) {}

  /** `GroupCoordinator.heartbeat` (its doc there is the contract). */
  async heartbeat(request: HeartbeatRequest): Promise<void> {
    this.state.checkOpen();
    checkGroupId(request.groupId);
    this.state.checkFenced(this.state.groups.get(request.groupId), request.memberId, request.groupInstanceId);
    const { group, member } = this.state.memberOf(request.groupId, request.memberId, request.generationId);
    if (group.is(GroupState.EMPTY)) throw unknownMember(group, member.memberId);
    this.rebalancer.scheduleExpiry(group, member, member.sessionTimeoutMs);
    if (group.is(GroupState.PREPARING_REBALANCE)) {
      throw groupError(ErrorCode.REBALANCE_IN_PROGRESS, `group '${group.groupId}' is rebalancing; join again`);
    }
  }

  /** `GroupCoordinator.leaveGroup` (its doc there is the contract). */
  async leaveGroup(request: LeaveGroupRequest): Promise<LeaveGroupResult> {
    this.state.checkOpen();
    checkGroupId(request.groupId);
    const group = this.state.groups.get(request.groupId);
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
      this.state.logger.info({ groupId: group.groupId, memberId: byInstance.memberId, groupInstanceId }, 'static member left');
      this.rebalancer.removeMember(group, byInstance);
      return null;
    }
    const pending = group.pendingMembers.get(memberId);
    if (pending !== undefined) {
      clearTimeout(pending);
      group.pendingMembers.delete(memberId);
      this.rebalancer.tryCompleteJoin(group);
      return null;
    }
    const member = group.members.get(memberId);
    if (member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
    this.state.logger.info({ groupId: group.groupId, memberId }, 'member left');
    this.rebalancer.removeMember(group, member);
    return null;
  }
}
