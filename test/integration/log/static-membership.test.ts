import { describe, expect, it } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { encodeAssignment, encodeSubscription, LogManager, type JoinGroupRequest, type JoinGroupResult } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { openLog, tempDir } from './helpers.js';

/**
 * Static membership (KIP-345) in the log's group coordinator: a static
 * member that restarts takes its old place without a rebalance, the old
 * member ID is fenced, LeaveGroup by instance ID, static members kept
 * through a rebalance they miss, and the membership of a static group kept
 * across a reopen of the log.
 */
function joinRequest(groupId: string, groupInstanceId: string | null, memberId = '', overrides: Partial<JoinGroupRequest> = {}): JoinGroupRequest {
  return {
    groupId,
    memberId,
    groupInstanceId,
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: encodeSubscription({ topics: ['t'] }) }],
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 10_000,
    clientId: 'test',
    requireKnownMemberId: true,
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

async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  return Promise.race([promise, new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), ms))]);
}

const forA = encodeAssignment({ assignedPartitions: [{ topic: 't', partitions: [0, 1] }] });
const forB = encodeAssignment({ assignedPartitions: [{ topic: 't', partitions: [2, 3] }] });

/** Two static members, 'pod-a' (leader) and 'pod-b', Stable at generation 1 with partitions 0-1 and 2-3. */
async function stableGroup(logManager: LogManager, groupId: string): Promise<{ a: JoinGroupResult; b: JoinGroupResult }> {
  const [a, b] = await Promise.all([logManager.groups.joinGroup(joinRequest(groupId, 'pod-a')), logManager.groups.joinGroup(joinRequest(groupId, 'pod-b'))]);
  const leader = a.leader === a.memberId ? a : b;
  const follower = leader === a ? b : a;
  const assignments = [
    { memberId: a.memberId, assignment: forA },
    { memberId: b.memberId, assignment: forB },
  ];
  const followerSync = logManager.groups.syncGroup({ groupId, generationId: 1, memberId: follower.memberId, assignments: [] });
  await logManager.groups.syncGroup({ groupId, generationId: 1, memberId: leader.memberId, assignments });
  await followerSync;
  expect(logManager.groups.describeGroup(groupId)).toMatchObject({ state: 'Stable', generationId: 1 });
  return { a, b };
}

/** Short sessions allowed; a 50 ms initial delay so that members joining together share generation 1. */
const GROUPS = { groups: { minSessionTimeoutMs: 50, initialRebalanceDelayMs: 50 } };

async function logWithTopic(): Promise<LogManager> {
  const logManager = await openLog(await tempDir(), GROUPS);
  await logManager.createTopic('t', { partitions: 4 });
  return logManager;
}

describe('static membership (KIP-345)', () => {
  it('a static member joins without MEMBER_ID_REQUIRED, under an ID that starts with its instance ID', async () => {
    const logManager = await logWithTopic();
    const joined = await logManager.groups.joinGroup(joinRequest('s1', 'pod-a'));
    expect(joined.memberId).toMatch(/^pod-a-[0-9a-f-]{36}$/);
    expect(joined.members).toEqual([{ memberId: joined.memberId, groupInstanceId: 'pod-a', metadata: encodeSubscription({ topics: ['t'] }) }]);
    const empty = await caught(logManager.groups.joinGroup(joinRequest('s1', '')));
    expect([empty.code, empty.message]).toEqual(['INVALID_GROUP_ID', 'group.instance.id must not be empty: give one, or none (null) for a dynamic member']);
  });

  it('a restarted static member gets its assignment back under a new member ID, without a rebalance; the old ID is fenced', async () => {
    const logManager = await logWithTopic();
    const { a, b } = await stableGroup(logManager, 's2');
    const rebalances: string[] = [];
    logManager.groups.onRebalance('s2', () => rebalances.push('rebalance'));

    const again = await logManager.groups.joinGroup(joinRequest('s2', 'pod-b'));
    expect(again.memberId).not.toBe(b.memberId);
    expect(again).toMatchObject({ generationId: 1, leader: a.leader, members: [] });
    const synced = await logManager.groups.syncGroup({ groupId: 's2', generationId: 1, memberId: again.memberId, groupInstanceId: 'pod-b', assignments: [] });
    expect(synced.assignment.equals(forB)).toBe(true);
    // The other member carries on in generation 1: no rebalance happened.
    await logManager.groups.heartbeat({ groupId: 's2', generationId: 1, memberId: a.memberId, groupInstanceId: 'pod-a' });
    expect(rebalances).toEqual([]);
    const described = logManager.groups.describeGroup('s2');
    expect(described).toMatchObject({ state: 'Stable', generationId: 1 });
    expect(described.members.map((m) => m.memberId).sort()).toEqual([a.memberId, again.memberId].sort());

    const fenced = (error: ConcordatError) => [
      error.code,
      error.message.startsWith(`member ${b.memberId} of group 's2' is fenced: static member 'pod-b' has rejoined as ${again.memberId}`),
    ];
    const expected = ['FENCED_INSTANCE_ID', true];
    expect(fenced(await caught(logManager.groups.heartbeat({ groupId: 's2', generationId: 1, memberId: b.memberId, groupInstanceId: 'pod-b' })))).toEqual(
      expected,
    );
    expect(
      fenced(await caught(logManager.groups.syncGroup({ groupId: 's2', generationId: 1, memberId: b.memberId, groupInstanceId: 'pod-b', assignments: [] }))),
    ).toEqual(expected);
    expect(fenced(await caught(logManager.groups.joinGroup(joinRequest('s2', 'pod-b', b.memberId))))).toEqual(expected);
    const commit = {
      groupId: 's2',
      generationId: 1,
      memberId: b.memberId,
      groupInstanceId: 'pod-b',
      topics: [{ topic: 't', partitions: [{ partition: 2, offset: 5 }] }],
    };
    expect(fenced(await caught(logManager.groups.commitOffsets(commit)))).toEqual(expected);
    expect((await logManager.groups.leaveGroup({ groupId: 's2', members: [{ memberId: b.memberId, groupInstanceId: 'pod-b' }] })).members[0]!.errorCode).toBe(
      'FENCED_INSTANCE_ID',
    );
    // The new incarnation commits.
    await logManager.groups.commitOffsets({ ...commit, memberId: again.memberId });
    expect(rebalances).toEqual([]);
  });

  it('a restarted static member that was the leader takes the leadership but is told the old leader, so it does not assign', async () => {
    const logManager = await logWithTopic();
    const { a, b } = await stableGroup(logManager, 's3');
    const leader = a.leader === a.memberId ? { joined: a, instance: 'pod-a' } : { joined: b, instance: 'pod-b' };
    const again = await logManager.groups.joinGroup(joinRequest('s3', leader.instance));
    expect(again).toMatchObject({ generationId: 1, leader: leader.joined.memberId, members: [] });
    expect(logManager.groups.describeGroup('s3')).toMatchObject({ state: 'Stable', generationId: 1, leaderId: again.memberId });
  });

  it('the old incarnation waiting in SyncGroup is answered FENCED_INSTANCE_ID; in CompletingRebalance the new one causes a rebalance', async () => {
    const logManager = await logWithTopic();
    const [a, b] = await Promise.all([logManager.groups.joinGroup(joinRequest('s4', 'pod-a')), logManager.groups.joinGroup(joinRequest('s4', 'pod-b'))]);
    const follower = a.leader === a.memberId ? b : a;
    const followerInstance = follower === a ? 'pod-a' : 'pod-b';
    const waiting = caught(logManager.groups.syncGroup({ groupId: 's4', generationId: 1, memberId: follower.memberId, assignments: [] }));
    const again = logManager.groups.joinGroup(joinRequest('s4', followerInstance));
    expect((await waiting).code).toBe('FENCED_INSTANCE_ID');
    expect(logManager.groups.describeGroup('s4').state).toBe('PreparingRebalance');
    expect(await settledWithin(again, 30)).toBe('pending');
    const leader = follower === a ? b : a;
    await logManager.groups.joinGroup(joinRequest('s4', follower === a ? 'pod-b' : 'pod-a', leader.memberId));
    expect((await again).generationId).toBe(2);
  });

  it('LeaveGroup by instance ID (member ID empty) removes the static member and rebalances the rest', async () => {
    const logManager = await logWithTopic();
    const { a, b } = await stableGroup(logManager, 's5');
    const left = await logManager.groups.leaveGroup({
      groupId: 's5',
      members: [
        { memberId: '', groupInstanceId: 'pod-b' },
        { memberId: '', groupInstanceId: 'pod-z' },
      ],
    });
    expect(left.members.map((m) => m.errorCode)).toEqual([null, 'UNKNOWN_MEMBER_ID']);
    expect(logManager.groups.describeGroup('s5').state).toBe('PreparingRebalance');
    const rejoined = await logManager.groups.joinGroup(joinRequest('s5', 'pod-a', a.memberId));
    expect(rejoined).toMatchObject({ generationId: 2, leader: a.memberId });
    expect(rejoined.members.map((m) => m.memberId)).toEqual([a.memberId]);
    expect(logManager.groups.describeGroup('s5').members.some((m) => m.memberId === b.memberId)).toBe(false);
  });

  it('a static member that misses a rebalance stays in the group, with an assignment, until its session expires', async () => {
    const logManager = await logWithTopic();
    const [a, b] = await Promise.all([
      logManager.groups.joinGroup(joinRequest('s6', 'pod-a', '', { sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 100 })),
      logManager.groups.joinGroup(joinRequest('s6', 'pod-b', '', { sessionTimeoutMs: 400, rebalanceTimeoutMs: 100 })),
    ]);
    const [aId, aInstance, bId] = a.leader === a.memberId ? [a.memberId, 'pod-a', b.memberId] : [b.memberId, 'pod-b', a.memberId];
    void logManager.groups.syncGroup({ groupId: 's6', generationId: 1, memberId: bId, assignments: [] }).catch(() => {});
    await logManager.groups.syncGroup({ groupId: 's6', generationId: 1, memberId: aId, assignments: [] });
    // A dynamic member joins; the static follower never rejoins (its process is down).
    const dynamic = logManager.groups.joinGroup(joinRequest('s6', null, '', { requireKnownMemberId: false, rebalanceTimeoutMs: 100 }));
    const leaderAgain = await logManager.groups.joinGroup(joinRequest('s6', aInstance, aId, { rebalanceTimeoutMs: 100 }));
    await dynamic;
    expect(leaderAgain.generationId).toBe(2);
    expect(leaderAgain.members.map((m) => m.memberId)).toContain(bId);
    // Its session (400 ms) ends: removed, and the group rebalances without it.
    await until(() => logManager.groups.describeGroup('s6').members.every((m) => m.memberId !== bId), { timeoutMs: 5000 });
  });

  it('keeps a static group Stable across a reopen of the log: generation, members and assignments', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir, ...GROUPS });
    await first.createTopic('t', { partitions: 4 });
    const { a, b } = await stableGroup(first, 's7');
    await first.close();

    const logManager = await openLog(dir, GROUPS);
    const described = logManager.groups.describeGroup('s7');
    expect(described).toMatchObject({ state: 'Stable', generationId: 1, leaderId: a.leader });
    expect(described.members.map((m) => [m.memberId, m.groupInstanceId]).sort()).toEqual(
      [
        [a.memberId, 'pod-a'],
        [b.memberId, 'pod-b'],
      ].sort(),
    );
    // The old member carries on; a restarted one gets its assignment back, both in generation 1.
    await logManager.groups.heartbeat({ groupId: 's7', generationId: 1, memberId: a.memberId, groupInstanceId: 'pod-a' });
    const again = await logManager.groups.joinGroup(joinRequest('s7', 'pod-b'));
    expect(again.generationId).toBe(1);
    const synced = await logManager.groups.syncGroup({ groupId: 's7', generationId: 1, memberId: again.memberId, groupInstanceId: 'pod-b', assignments: [] });
    expect(synced.assignment.equals(forB)).toBe(true);
    expect((await caught(logManager.groups.heartbeat({ groupId: 's7', generationId: 1, memberId: b.memberId, groupInstanceId: 'pod-b' }))).code).toBe(
      'FENCED_INSTANCE_ID',
    );
  });

  it('keeps the stored membership through a compaction of the offsets log', async () => {
    const dir = await tempDir();
    const options = { groups: { ...GROUPS.groups, offsetsLogBytesMax: 64 * 1024 } };
    const first = await LogManager.open({ dataDir: dir, ...options });
    await first.createTopic('t', { partitions: 4 });
    const { a } = await stableGroup(first, 's9');
    for (let i = 0; i < 1500; i++) {
      await first.groups.commitOffsets({
        groupId: 'other',
        generationId: -1,
        memberId: '',
        topics: [{ topic: 't', partitions: [{ partition: i % 4, offset: i }] }],
      });
    }
    expect(first.groups.offsetStoreStats().compactions).toBeGreaterThan(0);
    await first.close();
    const logManager = await openLog(dir, options);
    expect(logManager.groups.describeGroup('s9')).toMatchObject({ state: 'Stable', generationId: 1, leaderId: a.leader });
  });

  it('after a reopen, stored members that never come back expire by session timeout and the group empties', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir, ...GROUPS });
    await first.createTopic('t', { partitions: 4 });
    const solo = await first.groups.joinGroup(joinRequest('s8', 'pod-a', '', { sessionTimeoutMs: 200 }));
    await first.groups.syncGroup({ groupId: 's8', generationId: 1, memberId: solo.memberId, assignments: [{ memberId: solo.memberId, assignment: forA }] });
    await first.close();

    const logManager = await openLog(dir, GROUPS);
    expect(logManager.groups.describeGroup('s8').state).toBe('Stable');
    await until(() => logManager.groups.describeGroup('s8').state === 'Dead', { timeoutMs: 5000 });
    await logManager.close();
    const third = await openLog(dir, GROUPS);
    expect(third.groups.describeGroup('s8').state).toBe('Dead');
  });
});
