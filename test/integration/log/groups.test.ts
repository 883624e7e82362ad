import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { decodeAssignment, encodeAssignment, encodeSubscription, LogManager, type JoinGroupRequest } from '../../../src/log/index.js';
import { openLog, tempDir } from './helpers.js';

const FAST_GROUPS = { groups: { minSessionTimeoutMs: 50 } };

function joinRequest(groupId: string, memberId = '', overrides: Partial<JoinGroupRequest> = {}): JoinGroupRequest {
  return {
    groupId,
    memberId,
    protocolType: 'consumer',
    protocols: [
      { name: 'range', metadata: encodeSubscription({ topics: ['t'] }) },
      { name: 'roundrobin', metadata: encodeSubscription({ topics: ['t'] }) },
    ],
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 10_000,
    clientId: 'test',
    ...overrides,
  };
}

async function caught(promise: Promise<unknown>): Promise<ConcordatError> {
  try {
    await promise;
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected a rejection');
}

/**
 * Whether `promise` has settled once everything already queued (promise callbacks, I/O callbacks) has
 * run. The coordinator answers a join or a sync in the call that completes the round, or from a timer
 * (seconds away in these tests): one still waiting for another member's call is pending here, whatever
 * the machine's speed, and one answered early (the bug) has settled.
 */
async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

async function logWithTopic(options = {}): Promise<LogManager> {
  const logManager = await openLog(await tempDir(), options);
  await logManager.createTopic('t', { partitions: 4 });
  return logManager;
}

describe('GroupCoordinator membership', () => {
  it('a lone member joins generation 1 as leader, syncs its assignment, heartbeats in Stable', async () => {
    const logManager = await logWithTopic();
    const joined = await logManager.groups.joinGroup(joinRequest('g1'));
    expect(joined).toMatchObject({ generationId: 1, protocolType: 'consumer', protocolName: 'range', leader: joined.memberId });
    expect(joined.memberId).toMatch(/^test-[0-9a-f-]{36}$/);
    expect(joined.members).toEqual([{ memberId: joined.memberId, groupInstanceId: null, metadata: encodeSubscription({ topics: ['t'] }) }]);
    expect(logManager.groups.describeGroup('g1').state).toBe('CompletingRebalance');
    const assignment = encodeAssignment({ assignedPartitions: [{ topic: 't', partitions: [0, 1, 2, 3] }] });
    const synced = await logManager.groups.syncGroup({
      groupId: 'g1',
      generationId: 1,
      memberId: joined.memberId,
      assignments: [{ memberId: joined.memberId, assignment }],
    });
    expect(synced).toEqual({ protocolType: 'consumer', protocolName: 'range', assignment });
    expect(logManager.groups.describeGroup('g1')).toMatchObject({ state: 'Stable', generationId: 1, leaderId: joined.memberId });
    await logManager.groups.heartbeat({ groupId: 'g1', generationId: 1, memberId: joined.memberId });
  });

  it('a second member starts a rebalance; the first learns it from Heartbeat, rejoins, and both get generation 2', async () => {
    const logManager = await logWithTopic();
    const a = await logManager.groups.joinGroup(joinRequest('g2'));
    await logManager.groups.syncGroup({ groupId: 'g2', generationId: 1, memberId: a.memberId, assignments: [] });
    const bJoin = logManager.groups.joinGroup(joinRequest('g2'));
    expect(await settledNow(bJoin)).toBe(false);
    expect(logManager.groups.describeGroup('g2').state).toBe('PreparingRebalance');
    const heartbeat = await caught(logManager.groups.heartbeat({ groupId: 'g2', generationId: 1, memberId: a.memberId }));
    expect([heartbeat.code, heartbeat.message]).toEqual(['REBALANCE_IN_PROGRESS', "group 'g2' is rebalancing; join again"]);
    const aAgain = await logManager.groups.joinGroup(joinRequest('g2', a.memberId));
    const b = await bJoin;
    expect(aAgain).toMatchObject({ generationId: 2, leader: a.memberId, memberId: a.memberId });
    expect(aAgain.members.map((m) => m.memberId).sort()).toEqual([a.memberId, b.memberId].sort());
    expect(b).toMatchObject({ generationId: 2, leader: a.memberId, members: [] });

    const bSync = logManager.groups.syncGroup({ groupId: 'g2', generationId: 2, memberId: b.memberId, assignments: [] });
    expect(await settledNow(bSync)).toBe(false);
    const forB = encodeAssignment({ assignedPartitions: [{ topic: 't', partitions: [2, 3] }] });
    const forA = encodeAssignment({ assignedPartitions: [{ topic: 't', partitions: [0, 1] }] });
    const aSync = await logManager.groups.syncGroup({
      groupId: 'g2',
      generationId: 2,
      memberId: a.memberId,
      assignments: [
        { memberId: a.memberId, assignment: forA },
        { memberId: b.memberId, assignment: forB },
      ],
    });
    expect(decodeAssignment(aSync.assignment).assignedPartitions).toEqual([{ topic: 't', partitions: [0, 1] }]);
    expect(decodeAssignment((await bSync).assignment).assignedPartitions).toEqual([{ topic: 't', partitions: [2, 3] }]);
    const described = logManager.groups.describeGroup('g2');
    expect(described.state).toBe('Stable');
    expect(described.members.map((m) => m.assignment.equals(m.memberId === a.memberId ? forA : forB))).toEqual([true, true]);
  });

  it('answers Kafka’s errors for a wrong generation, an unknown member, a bad protocol or session timeout', async () => {
    const logManager = await logWithTopic();
    const a = await logManager.groups.joinGroup(joinRequest('g3'));
    await logManager.groups.syncGroup({ groupId: 'g3', generationId: 1, memberId: a.memberId, assignments: [] });
    const wrongGeneration = await caught(logManager.groups.heartbeat({ groupId: 'g3', generationId: 7, memberId: a.memberId }));
    expect([wrongGeneration.code, wrongGeneration.message]).toEqual(['ILLEGAL_GENERATION', "group 'g3' is at generation 1, not 7"]);
    const unknown = await caught(logManager.groups.heartbeat({ groupId: 'g3', generationId: 1, memberId: 'nobody' }));
    expect([unknown.code, unknown.message]).toEqual(['UNKNOWN_MEMBER_ID', "member nobody is not in group 'g3'"]);
    const unknownJoin = await caught(logManager.groups.joinGroup(joinRequest('g3', 'nobody')));
    expect(unknownJoin.code).toBe('UNKNOWN_MEMBER_ID');
    const protocol = await caught(logManager.groups.joinGroup(joinRequest('g3', '', { protocols: [{ name: 'sticky', metadata: Buffer.alloc(0) }] })));
    expect([protocol.code, protocol.message]).toEqual([
      'INCONSISTENT_GROUP_PROTOCOL',
      "group 'g3' uses protocol type 'consumer' with protocols [range, roundrobin]; the member offers 'consumer' [sticky]",
    ]);
    const session = await caught(logManager.groups.joinGroup(joinRequest('g3', '', { sessionTimeoutMs: 100 })));
    expect([session.code, session.message]).toEqual([
      'INVALID_SESSION_TIMEOUT',
      'session timeout 100 ms is outside 6000..1800000 ms (log options groups.minSessionTimeoutMs and groups.maxSessionTimeoutMs)',
    ]);
    const empty = await caught(logManager.groups.joinGroup(joinRequest('')));
    expect(empty.code).toBe('INVALID_GROUP_ID');
  });

  it('JoinGroup v4 flow: MEMBER_ID_REQUIRED hands out an ID, the second join uses it', async () => {
    const logManager = await logWithTopic();
    const first = await caught(logManager.groups.joinGroup(joinRequest('g4', '', { requireKnownMemberId: true })));
    expect(first.code).toBe('MEMBER_ID_REQUIRED');
    const memberId = first.context.memberId as string;
    expect(first.message).toBe(`group 'g4' requires a member ID: join again with ${memberId}`);
    const joined = await logManager.groups.joinGroup(joinRequest('g4', memberId));
    expect(joined).toMatchObject({ memberId, generationId: 1, leader: memberId });
  });

  it('a rejoining follower of a Stable group with unchanged metadata gets the current generation at once', async () => {
    const logManager = await logWithTopic();
    const a = await logManager.groups.joinGroup(joinRequest('g5'));
    const bJoin = logManager.groups.joinGroup(joinRequest('g5'));
    await logManager.groups.joinGroup(joinRequest('g5', a.memberId));
    const b = await bJoin;
    await Promise.all([
      logManager.groups.syncGroup({ groupId: 'g5', generationId: 2, memberId: a.memberId, assignments: [] }),
      logManager.groups.syncGroup({ groupId: 'g5', generationId: 2, memberId: b.memberId, assignments: [] }),
    ]);
    const follower = b.memberId === a.memberId ? a : b;
    expect(await logManager.groups.joinGroup(joinRequest('g5', follower.memberId))).toMatchObject({ generationId: 2, members: [] });
    expect(logManager.groups.describeGroup('g5').state).toBe('Stable');
  });

  it('LeaveGroup rebalances the rest; when the last one leaves, a group without offsets is gone (Dead)', async () => {
    const logManager = await logWithTopic();
    const a = await logManager.groups.joinGroup(joinRequest('g6'));
    const bJoin = logManager.groups.joinGroup(joinRequest('g6'));
    await logManager.groups.joinGroup(joinRequest('g6', a.memberId));
    const b = await bJoin;
    expect(await logManager.groups.leaveGroup({ groupId: 'g6', members: [{ memberId: b.memberId }, { memberId: 'ghost' }] })).toEqual({
      members: [
        { memberId: b.memberId, groupInstanceId: null, errorCode: null },
        { memberId: 'ghost', groupInstanceId: null, errorCode: 'UNKNOWN_MEMBER_ID' },
      ],
    });
    expect(logManager.groups.describeGroup('g6').state).toBe('PreparingRebalance');
    expect(await logManager.groups.joinGroup(joinRequest('g6', a.memberId))).toMatchObject({ generationId: 3, leader: a.memberId });
    await logManager.groups.leaveGroup({ groupId: 'g6', members: [{ memberId: a.memberId }] });
    expect(logManager.groups.describeGroup('g6')).toMatchObject({ state: 'Dead', members: [] });
  });

  it('removes a member whose session expires and rebalances the others', async () => {
    const logManager = await logWithTopic(FAST_GROUPS);
    // The coordinator's timers on a fake clock: b's 150 ms session expires when the test moves the clock,
    // not during the joins and syncs below when a loaded machine runs them slowly.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    onTestFinished(() => void vi.useRealTimers());
    const a = await logManager.groups.joinGroup(joinRequest('g7', '', { sessionTimeoutMs: 5000 }));
    const bJoin = logManager.groups.joinGroup(joinRequest('g7', '', { sessionTimeoutMs: 150 }));
    await logManager.groups.joinGroup(joinRequest('g7', a.memberId, { sessionTimeoutMs: 5000 }));
    const b = await bJoin;
    await Promise.all([
      logManager.groups.syncGroup({ groupId: 'g7', generationId: 2, memberId: a.memberId, assignments: [] }),
      logManager.groups.syncGroup({ groupId: 'g7', generationId: 2, memberId: b.memberId, assignments: [] }),
    ]);
    // b stops heartbeating: the group drops it when its 150 ms session is over, not before.
    await vi.advanceTimersByTimeAsync(149);
    expect(logManager.groups.describeGroup('g7')).toMatchObject({ state: 'Stable', members: [expect.anything(), expect.anything()] });
    await vi.advanceTimersByTimeAsync(1);
    expect(logManager.groups.describeGroup('g7').members.map((m) => m.memberId)).toEqual([a.memberId]);
    expect((await caught(logManager.groups.heartbeat({ groupId: 'g7', generationId: 2, memberId: a.memberId }))).code).toBe('REBALANCE_IN_PROGRESS');
    expect((await caught(logManager.groups.heartbeat({ groupId: 'g7', generationId: 2, memberId: b.memberId }))).code).toBe('UNKNOWN_MEMBER_ID');
  });

  it('completes a rebalance at the rebalance timeout without the members that did not rejoin', async () => {
    const logManager = await logWithTopic(FAST_GROUPS);
    const a = await logManager.groups.joinGroup(joinRequest('g8', '', { rebalanceTimeoutMs: 200 }));
    await logManager.groups.syncGroup({ groupId: 'g8', generationId: 1, memberId: a.memberId, assignments: [] });
    const started = Date.now();
    const b = await logManager.groups.joinGroup(joinRequest('g8', '', { rebalanceTimeoutMs: 200 }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(b).toMatchObject({ generationId: 2, leader: b.memberId });
    expect(b.members.map((m) => m.memberId)).toEqual([b.memberId]);
    expect((await caught(logManager.groups.heartbeat({ groupId: 'g8', generationId: 1, memberId: a.memberId }))).code).toBe('UNKNOWN_MEMBER_ID');
  });

  it('a pending SyncGroup fails with REBALANCE_IN_PROGRESS when another member joins first', async () => {
    const logManager = await logWithTopic();
    const a = await logManager.groups.joinGroup(joinRequest('g9'));
    const bJoin = logManager.groups.joinGroup(joinRequest('g9'));
    await logManager.groups.joinGroup(joinRequest('g9', a.memberId));
    const b = await bJoin;
    const follower = b.memberId === b.leader ? a : b;
    const pending = caught(logManager.groups.syncGroup({ groupId: 'g9', generationId: 2, memberId: follower.memberId, assignments: [] }));
    void logManager.groups.joinGroup(joinRequest('g9')).catch(() => {});
    expect((await pending).code).toBe('REBALANCE_IN_PROGRESS');
  });

  it('waits group.initial.rebalance.delay.ms for more members before the first generation', async () => {
    const logManager = await logWithTopic({ groups: { initialRebalanceDelayMs: 150 } });
    // The delay's timer on a fake clock: b joins 100 ms into it, however slow the machine.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    onTestFinished(() => void vi.useRealTimers());
    let aAnswered = false;
    const aJoin = logManager.groups.joinGroup(joinRequest('g10')).finally(() => (aAnswered = true));
    await vi.advanceTimersByTimeAsync(100);
    expect(aAnswered).toBe(false);
    const bJoin = logManager.groups.joinGroup(joinRequest('g10'));
    // A member that joined during the delay starts another one: 150 + 150 ms in all.
    await vi.advanceTimersByTimeAsync(199);
    expect(aAnswered).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const [a, b] = await Promise.all([aJoin, bJoin]);
    expect([a.generationId, b.generationId]).toEqual([1, 1]);
    expect(a.leader).toBe(b.leader);
  });
});

describe('GroupCoordinator offsets', () => {
  it('commits with member and generation, fetches them, and keeps them across a reopen', async () => {
    const dir = await tempDir();
    const logManager = await LogManager.open({ dataDir: dir });
    await logManager.createTopic('t', { partitions: 4 });
    const a = await logManager.groups.joinGroup(joinRequest('o1'));
    await logManager.groups.syncGroup({ groupId: 'o1', generationId: 1, memberId: a.memberId, assignments: [] });
    const result = await logManager.groups.commitOffsets({
      groupId: 'o1',
      generationId: 1,
      memberId: a.memberId,
      topics: [
        {
          topic: 't',
          partitions: [
            { partition: 0, offset: 42, metadata: 'm' },
            { partition: 9, offset: 1 },
          ],
        },
        { topic: 'nope', partitions: [{ partition: 0, offset: 1 }] },
      ],
    });
    expect(result).toEqual({
      topics: [
        {
          topic: 't',
          partitions: [
            { partition: 0, errorCode: null },
            { partition: 9, errorCode: 'UNKNOWN_TOPIC_OR_PARTITION' },
          ],
        },
        { topic: 'nope', partitions: [{ partition: 0, errorCode: 'UNKNOWN_TOPIC_OR_PARTITION' }] },
      ],
    });
    expect(await logManager.groups.fetchOffsets({ groupId: 'o1', topics: [{ topic: 't', partitions: [0, 1] }] })).toEqual({
      topics: [
        {
          topic: 't',
          partitions: [
            { partition: 0, offset: 42, leaderEpoch: -1, metadata: 'm', errorCode: null },
            { partition: 1, offset: -1, leaderEpoch: -1, metadata: '', errorCode: null },
          ],
        },
      ],
    });
    await logManager.close();
    const reopened = await openLog(dir);
    expect(await reopened.groups.fetchOffsets({ groupId: 'o1', topics: null })).toEqual({
      topics: [{ topic: 't', partitions: [{ partition: 0, offset: 42, leaderEpoch: -1, metadata: 'm', errorCode: null }] }],
    });
    expect(reopened.groups.listGroups()).toEqual([{ groupId: 'o1', protocolType: '', state: 'Empty' }]);
  });

  it('refuses commits from an old generation, an unknown member, or during CompletingRebalance', async () => {
    const logManager = await logWithTopic();
    const a = await logManager.groups.joinGroup(joinRequest('o2'));
    const commit = (generationId: number, memberId: string) =>
      logManager.groups.commitOffsets({ groupId: 'o2', generationId, memberId, topics: [{ topic: 't', partitions: [{ partition: 0, offset: 1 }] }] });
    expect((await caught(commit(1, a.memberId))).code).toBe('REBALANCE_IN_PROGRESS');
    await logManager.groups.syncGroup({ groupId: 'o2', generationId: 1, memberId: a.memberId, assignments: [] });
    expect((await caught(commit(0, a.memberId))).message).toBe("group 'o2' is at generation 1, not 0");
    expect((await caught(commit(1, 'ghost'))).code).toBe('UNKNOWN_MEMBER_ID');
    expect((await caught(commit(-1, ''))).code).toBe('UNKNOWN_MEMBER_ID');
    await commit(1, a.memberId);
    expect((await caught(logManager.groups.commitOffsets({ groupId: 'nogroup', generationId: 3, memberId: 'x', topics: [] }))).code).toBe('ILLEGAL_GENERATION');
  });

  it('accepts commits without membership (generation -1) to a group with no members, and bounds metadata', async () => {
    const logManager = await logWithTopic({ groups: { offsetMetadataMaxBytes: 4 } });
    const result = await logManager.groups.commitOffsets({
      groupId: 'standalone',
      generationId: -1,
      memberId: '',
      topics: [
        {
          topic: 't',
          partitions: [
            { partition: 1, offset: 5 },
            { partition: 2, offset: 6, metadata: 'too long' },
          ],
        },
      ],
    });
    expect(result.topics[0]!.partitions).toEqual([
      { partition: 1, errorCode: null },
      { partition: 2, errorCode: 'OFFSET_METADATA_TOO_LARGE' },
    ]);
    expect(
      (await logManager.groups.fetchOffsets({ groupId: 'standalone', topics: [{ topic: 't', partitions: [1, 2] }] })).topics[0]!.partitions.map(
        (p) => p.offset,
      ),
    ).toEqual([5, -1]);
  });

  it('coalesces concurrent commits and keeps the last of each partition', async () => {
    const logManager = await logWithTopic();
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        logManager.groups.commitOffsets({
          groupId: 'o4',
          generationId: -1,
          memberId: '',
          topics: [{ topic: 't', partitions: [{ partition: i % 4, offset: i }] }],
        }),
      ),
    );
    const fetched = await logManager.groups.fetchOffsets({ groupId: 'o4', topics: [{ topic: 't', partitions: [0, 1, 2, 3] }] });
    expect(fetched.topics[0]!.partitions.map((p) => p.offset)).toEqual([48, 49, 46, 47]);
  });

  it('deletes only Empty groups, with their offsets, and drops offsets of a deleted topic', async () => {
    const logManager = await logWithTopic();
    await logManager.createTopic('other', { partitions: 1 });
    await logManager.groups.commitOffsets({
      groupId: 'd1',
      generationId: -1,
      memberId: '',
      topics: [
        { topic: 't', partitions: [{ partition: 0, offset: 3 }] },
        { topic: 'other', partitions: [{ partition: 0, offset: 4 }] },
      ],
    });
    await logManager.groups.joinGroup(joinRequest('busy'));
    expect(await logManager.groups.deleteGroups(['busy', 'missing'])).toEqual([
      { groupId: 'busy', errorCode: 'NON_EMPTY_GROUP' },
      { groupId: 'missing', errorCode: 'GROUP_ID_NOT_FOUND' },
    ]);
    await logManager.deleteTopic('other');
    expect(await logManager.groups.fetchOffsets({ groupId: 'd1', topics: null })).toEqual({
      topics: [{ topic: 't', partitions: [{ partition: 0, offset: 3, leaderEpoch: -1, metadata: '', errorCode: null }] }],
    });
    expect(await logManager.groups.deleteGroups(['d1'])).toEqual([{ groupId: 'd1', errorCode: null }]);
    expect(await logManager.groups.fetchOffsets({ groupId: 'd1', topics: null })).toEqual({ topics: [] });
  });
});
