/**
 * What every part of the group coordinator shares: its groups, the
 * in-process rebalance listeners, whether it is closed, its options, offset
 * store and topic lookup, and the checks every request starts with (open,
 * fencing, the group and member it names).
 */
import type { CompiledGroupCoordinatorOptions } from '../../config/index.js';
import { ConcordatError, ErrorCode } from '../../errors.js';
import type { Logger } from '../../observability/index.js';
import { fencedError, groupError, unknownMember } from './group-errors.js';
import { Group, GroupState, type Member } from './group.js';
import type { OffsetStore } from './offset-store.js';
import type { TopicLookup } from './requests.js';

/**
 * The group coordinator's shared state. One event loop: its parts change
 * it synchronously between awaits (see `GroupCoordinator`).
 */
export class CoordinatorState {
  /** Every group the coordinator knows: with members now, or with committed offsets. */
  readonly groups = new Map<string, Group>();
  /** In-process rebalance listeners by group ID (`GroupCoordinator.onRebalance`). */
  readonly listeners = new Map<string, Set<() => void>>();
  /** Set by `close`: every request then fails with COORDINATOR_NOT_AVAILABLE. */
  closed = false;

  /** The coordinator's options, its offset store, topics and logger, as `GroupCoordinator.open` made them. */
  constructor(
    readonly options: CompiledGroupCoordinatorOptions,
    readonly offsets: OffsetStore,
    readonly topics: TopicLookup,
    readonly logger: Logger,
  ) {}

  /** A new Empty group, added. @throws ConcordatError LIMIT_EXCEEDED past groupsMax */
  createGroup(groupId: string): Group {
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

  /** FENCED_INSTANCE_ID when `groupInstanceId` belongs to another member ID of the group (Kafka's isStaticMemberFenced). */
  checkFenced(group: Group | undefined, memberId: string, groupInstanceId: string | null | undefined): void {
    if (group !== undefined && group.isStaticMemberFenced(memberId, groupInstanceId)) {
      throw fencedError(group, memberId, groupInstanceId!);
    }
  }

  /** @throws ConcordatError COORDINATOR_NOT_AVAILABLE once closed */
  checkOpen(): void {
    if (this.closed) throw groupError(ErrorCode.COORDINATOR_NOT_AVAILABLE, 'the group coordinator is closed');
  }

  /** The group and member a request names, checking member then generation (Kafka's order). */
  memberOf(groupId: string, memberId: string, generationId: number): { group: Group; member: Member } {
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
