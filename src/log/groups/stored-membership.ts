/**
 * The stored membership of groups with static members (KIP-345; Kafka's
 * GroupMetadata record): written to the offset store when a generation
 * becomes Stable or a static member is replaced, removed when the group
 * empties, and loaded on open so such a group is Stable again after a
 * restart.
 */
import { ConcordatError, ErrorCode } from '../../errors.js';
import type { CoordinatorState } from './coordinator-state.js';
import { EMPTY_BYTES, Group, GroupState, Member } from './group.js';
import type { StoredGroupMetadata } from './offset-store.js';

/** Stores, forgets and loads the membership of groups with static members. */
export class StoredMembership {
  /** Works on `state`'s groups and offset store. */
  constructor(private readonly state: CoordinatorState) {}

  /**
   * Writes the group's membership to the offset store: its members with
   * `assignments` (default: their current ones). Resolves once durable.
   */
  async storeMembership(group: Group, assignments?: ReadonlyMap<string, Buffer>): Promise<void> {
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
    await this.state.offsets.storeGroupMetadata(group.groupId, metadata);
  }

  /** The group has no members any more: its stored membership goes (in the background; a failure is logged). */
  forgetMembership(group: Group): void {
    group.metadataStored = false;
    this.state.offsets.storeGroupMetadata(group.groupId, null).catch((error: unknown) => {
      this.state.logger.warn({ groupId: group.groupId, error: (error as Error).message }, 'could not remove the stored membership of an empty group');
    });
  }

  /** Logs a failed membership write and returns the COORDINATOR_NOT_AVAILABLE its waiters get. */
  membershipStoreFailed(group: Group, generation: number, error: unknown): ConcordatError {
    this.state.logger.error({ groupId: group.groupId, generationId: generation, error: (error as Error).message }, 'could not store group membership');
    return new ConcordatError(`group '${group.groupId}': its membership could not be stored (${(error as Error).message}); join again`, {
      code: ErrorCode.COORDINATOR_NOT_AVAILABLE,
      cause: error,
    });
  }

  /** Rebuilds a group stored with its membership: Stable, each member's session counting from now (`scheduleExpiry`). */
  loadStoredGroup(groupId: string, stored: StoredGroupMetadata, scheduleExpiry: (group: Group, member: Member, timeoutMs: number) => void): void {
    const group = new Group(groupId);
    if (stored.mem.length === 0) {
      this.state.groups.set(groupId, group);
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
      scheduleExpiry(group, member, sessionTimeoutMs);
    }
    group.leaderId = group.members.has(stored.l) ? stored.l : group.leaderId;
    group.state = GroupState.STABLE;
    group.metadataStored = true;
    this.state.groups.set(groupId, group);
  }
}
