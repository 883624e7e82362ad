import { ConcordatError } from '../../errors.js';

/**
 * The states of a consumer group (Kafka's `GroupState`), and the moves the
 * coordinator makes between them (rebalance.ts, join-group.ts, sync-group.ts):
 *
 * ```
 *            join (new member / changed metadata / leader rejoins)
 *   Empty ───────────────────────► PreparingRebalance ◄──────────────┐
 *     ▲                               │ all known members rejoined,   │ join, leave,
 *     │ last member gone              │ or rebalance timeout          │ session timeout
 *     └───────────────────────────────┤                               │
 *                                     ▼                               │
 *                            CompletingRebalance ── leader's SyncGroup ──► Stable
 *                                     └──────────────────────────────────────┘
 * ```
 * Dead: the group was deleted or the coordinator closed.
 */
export const GroupState = {
  EMPTY: 'Empty',
  PREPARING_REBALANCE: 'PreparingRebalance',
  COMPLETING_REBALANCE: 'CompletingRebalance',
  STABLE: 'Stable',
  DEAD: 'Dead',
} as const;
/** One of the {@link GroupState} values. */
export type GroupState = (typeof GroupState)[keyof typeof GroupState];

/** Kafka's `GroupMetadata.validPreviousStates`. */
const VALID_PREVIOUS: Readonly<Record<GroupState, readonly GroupState[]>> = {
  [GroupState.DEAD]: [GroupState.STABLE, GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY, GroupState.DEAD],
  [GroupState.COMPLETING_REBALANCE]: [GroupState.PREPARING_REBALANCE],
  [GroupState.STABLE]: [GroupState.COMPLETING_REBALANCE],
  [GroupState.PREPARING_REBALANCE]: [GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY],
  [GroupState.EMPTY]: [GroupState.PREPARING_REBALANCE],
};

/** One protocol a member offers in JoinGroup: its name (`range`, `roundrobin`) and its metadata (ConsumerProtocol Subscription bytes). */
export interface GroupProtocol {
  name: string;
  metadata: Buffer;
}

/** A member as the leader's JoinGroup response lists it. */
export interface JoinGroupMember {
  memberId: string;
  groupInstanceId: string | null;
  metadata: Buffer;
}

/** JoinGroup response fields (Kafka's JoinGroupResponse without errorCode and throttle). */
export interface JoinGroupResult {
  generationId: number;
  protocolType: string | null;
  protocolName: string | null;
  leader: string;
  memberId: string;
  /** The members and their metadata for the chosen protocol; only the leader gets them. */
  members: JoinGroupMember[];
}

/** SyncGroup response fields. */
export interface SyncGroupResult {
  protocolType: string | null;
  protocolName: string | null;
  assignment: Buffer;
}

/** A promise with its resolve and reject at hand: a JoinGroup or SyncGroup waiting for the rebalance. */
export class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: ConcordatError) => void;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/** The empty assignment or metadata. */
export const EMPTY_BYTES = Buffer.alloc(0);

/** One member of a group (Kafka's `MemberMetadata`): its protocols, timeouts, assignment and pending JoinGroup or SyncGroup. */
export class Member {
  assignment: Buffer = EMPTY_BYTES;
  joinWaiter: Deferred<JoinGroupResult> | null = null;
  syncWaiter: Deferred<SyncGroupResult> | null = null;
  /** Joined in the rebalance under way, never completed one (Kafka's isNew). */
  isNew = false;
  expiryTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly memberId: string,
    readonly groupInstanceId: string | null,
    readonly clientId: string,
    readonly clientHost: string,
    public sessionTimeoutMs: number,
    public rebalanceTimeoutMs: number,
    readonly protocolType: string,
    public protocols: GroupProtocol[],
  ) {}

  /** Same protocols, in the same order, with the same metadata bytes. */
  matches(protocols: readonly GroupProtocol[]): boolean {
    return (
      protocols.length === this.protocols.length &&
      protocols.every((p, i) => p.name === this.protocols[i]!.name && p.metadata.equals(this.protocols[i]!.metadata))
    );
  }

  /** The member's metadata for `protocolName`. @throws Error when it does not offer that protocol (the coordinator checks first) */
  metadataFor(protocolName: string): Buffer {
    const protocol = this.protocols.find((p) => p.name === protocolName);
    if (protocol === undefined) throw new Error(`member ${this.memberId} does not support protocol ${protocolName}`);
    return protocol.metadata;
  }

  /** Stops the session-timeout timer. */
  clearExpiry(): void {
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
  }

  /** A static member (KIP-345): it names a group.instance.id, kept across its restarts. */
  get isStatic(): boolean {
    return this.groupInstanceId !== null;
  }
}

/**
 * One consumer group's membership state (Kafka's `GroupMetadata`). The
 * coordinator (rebalance.ts and the request files beside it) drives the transitions; this class holds the
 * data and the rules that only look at it, and is used by the coordinator
 * alone, synchronously.
 */
export class Group {
  state: GroupState = GroupState.EMPTY;
  generationId = 0;
  protocolType: string | null = null;
  protocolName: string | null = null;
  leaderId: string | null = null;
  readonly members = new Map<string, Member>();
  /** Static members: group.instance.id → the member ID it currently has (Kafka's staticMembers). */
  readonly staticMembers = new Map<string, string>();
  /** The offset store holds this group's membership (it has or had static members): keep it current. */
  metadataStored = false;
  /** Members given an ID with MEMBER_ID_REQUIRED, expected to join again with it. */
  readonly pendingMembers = new Map<string, NodeJS.Timeout>();
  joinTimer: NodeJS.Timeout | null = null;
  /** The first rebalance of an empty group is waiting for more members (group.initial.rebalance.delay.ms). */
  initialDelayActive = false;
  newMemberAdded = false;

  constructor(readonly groupId: string) {}

  /** When the group last became Empty (or was loaded, Empty, at open): where offset retention starts counting (KIP-211). */
  emptySinceMs = Date.now();

  /** Moves to `state`. @throws Error when Kafka's state machine does not allow the move from the current state (a coordinator bug) */
  transitionTo(state: GroupState): void {
    if (!VALID_PREVIOUS[state].includes(this.state)) {
      throw new Error(`group ${this.groupId} cannot go from ${this.state} to ${state}`);
    }
    this.state = state;
    if (state === GroupState.EMPTY) this.emptySinceMs = Date.now();
  }

  /** Whether the group is in `state`. */
  is(state: GroupState): boolean {
    return this.state === state;
  }

  /** Adds a member; the first one fixes the group's protocol type and becomes leader if there is none. */
  add(member: Member): void {
    if (this.members.size === 0) this.protocolType = member.protocolType;
    this.members.set(member.memberId, member);
    if (member.groupInstanceId !== null) this.staticMembers.set(member.groupInstanceId, member.memberId);
    this.leaderId ??= member.memberId;
  }

  /** Removes a member; when it led, the next member in join order leads. */
  remove(memberId: string): void {
    const member = this.members.get(memberId);
    this.members.delete(memberId);
    if (member?.groupInstanceId != null && this.staticMembers.get(member.groupInstanceId) === memberId) {
      this.staticMembers.delete(member.groupInstanceId);
    }
    if (this.leaderId === memberId) this.leaderId = this.members.keys().next().value ?? null;
  }

  /** The member that holds `groupInstanceId`, if any. */
  staticMember(groupInstanceId: string | null | undefined): Member | undefined {
    if (groupInstanceId == null) return undefined;
    const memberId = this.staticMembers.get(groupInstanceId);
    return memberId === undefined ? undefined : this.members.get(memberId);
  }

  /**
   * Kafka's isStaticMemberFenced: the request names a group.instance.id that
   * this group knows under another member ID (an older incarnation of a
   * restarted static member, or a duplicate instance).
   */
  isStaticMemberFenced(memberId: string, groupInstanceId: string | null | undefined): boolean {
    if (groupInstanceId == null) return false;
    const current = this.staticMembers.get(groupInstanceId);
    return current !== undefined && current !== memberId;
  }

  /** Puts `member` (a static member's new incarnation) in the place of `oldMemberId`, leadership included. */
  replaceStaticMember(oldMemberId: string, member: Member): void {
    this.members.delete(oldMemberId);
    this.members.set(member.memberId, member);
    this.staticMembers.set(member.groupInstanceId!, member.memberId);
    if (this.leaderId === oldMemberId) this.leaderId = member.memberId;
  }

  /** Whether any member joined with a `groupInstanceId` (static membership, KIP-345). */
  hasStaticMembers(): boolean {
    return this.staticMembers.size > 0;
  }

  /**
   * Kafka's maybeElectNewJoinedLeader: the leader of the next generation must
   * be a member that rejoined (a static member may stay in the group without
   * rejoining). False when no member rejoined.
   */
  electJoinedLeader(): boolean {
    const leader = this.leaderId === null ? undefined : this.members.get(this.leaderId);
    if (leader?.joinWaiter != null) return true;
    for (const member of this.members.values()) {
      if (member.joinWaiter !== null) {
        this.leaderId = member.memberId;
        return true;
      }
    }
    return false;
  }

  /**
   * Whether a member with these protocols may join (Kafka's
   * `supportsProtocols`): an empty group takes any non-empty set; otherwise
   * the type must match and one protocol must be supported by every member.
   */
  supportsProtocols(protocolType: string, names: ReadonlySet<string>): boolean {
    if (this.members.size === 0) return protocolType.length > 0 && names.size > 0;
    if (protocolType !== this.protocolType) return false;
    for (const name of this.candidateProtocols()) if (names.has(name)) return true;
    return false;
  }

  /** Protocols every member supports. */
  candidateProtocols(): Set<string> {
    const members = [...this.members.values()];
    const candidates = new Set<string>(members[0]?.protocols.map((p) => p.name) ?? []);
    for (const member of members.slice(1)) {
      const names = new Set(member.protocols.map((p) => p.name));
      for (const name of candidates) if (!names.has(name)) candidates.delete(name);
    }
    return candidates;
  }

  /**
   * Kafka's `selectProtocol`: each member votes for the first of its own
   * protocols that every member supports; most votes wins, ties going to
   * the candidate the leader prefers.
   */
  selectProtocol(): string {
    const candidates = this.candidateProtocols();
    const votes = new Map<string, number>();
    for (const member of this.members.values()) {
      const vote = member.protocols.find((p) => candidates.has(p.name))!.name;
      votes.set(vote, (votes.get(vote) ?? 0) + 1);
    }
    const leader = this.leaderId === null ? undefined : this.members.get(this.leaderId);
    const preference = (leader ?? this.members.values().next().value!).protocols.map((p) => p.name);
    let best: string | null = null;
    for (const name of preference) {
      if (!candidates.has(name)) continue;
      if (best === null || (votes.get(name) ?? 0) > (votes.get(best) ?? 0)) best = name;
    }
    return best!;
  }

  /** Every known member has rejoined and no pending member is still expected. */
  allMembersJoined(): boolean {
    if (this.pendingMembers.size > 0) return false;
    for (const member of this.members.values()) if (member.joinWaiter === null) return false;
    return true;
  }

  /** The longest rebalance timeout of the members: how long a rebalance may wait for them. */
  rebalanceTimeoutMs(): number {
    let max = 0;
    for (const member of this.members.values()) max = Math.max(max, member.rebalanceTimeoutMs);
    return max;
  }

  /** Kafka's `initNextGeneration`. */
  initNextGeneration(): void {
    this.generationId += 1;
    if (this.members.size > 0) {
      this.protocolName = this.selectProtocol();
      this.transitionTo(GroupState.COMPLETING_REBALANCE);
    } else {
      this.protocolName = null;
      this.transitionTo(GroupState.EMPTY);
    }
  }

  /** Every member with its metadata for the group's chosen protocol: what the leader's JoinGroup response lists. */
  currentMemberMetadata(): JoinGroupMember[] {
    const protocol = this.protocolName!;
    return [...this.members.values()].map((member) => ({
      memberId: member.memberId,
      groupInstanceId: member.groupInstanceId,
      metadata: member.metadataFor(protocol),
    }));
  }
}
