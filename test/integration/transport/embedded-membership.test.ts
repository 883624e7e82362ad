import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import type { LogManager } from '../../../src/log/index.js';
import { armFault, disarmFaults, faultHits, InjectedFault } from '../../../src/observability/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import type { ConsumerFailureEvent, Delivery } from '../../../src/transport/index.js';
import { openLog, tempDir } from '../log/helpers.js';
import { unique, waitFor } from './contract.js';

// The group member of an embedded subscription (join, sync, heartbeat) does
// not end on a coordinator error: it stops its workers (they commit), reports
// the failure to onConsumerFailure, backs off and rejoins. These tests make
// the real member over a real log fail at its fault points
// (embedded.before-join, embedded.before-heartbeat).

const FAST = { heartbeatIntervalMs: 100, maxWaitMs: 200, retryBackoffMs: 20, retryBackoffMaxMs: 100, sessionTimeoutMs: 6000 };

function transportOver(logManager: LogManager, consumer: object = {}): EmbeddedTransport {
  const transport = new EmbeddedTransport(logManager, { consumer: { ...FAST, ...consumer } });
  onTestFinished(() => transport.close());
  return transport;
}

async function topicWith(logManager: LogManager, records: number): Promise<string> {
  const topic = unique('member');
  await logManager.createTopic(topic, { partitions: 1 });
  if (records > 0) await publish(logManager, topic, 0, records);
  return topic;
}

async function publish(logManager: LogManager, topic: string, from: number, count: number): Promise<void> {
  await logManager.appendRecords(
    topic,
    0,
    Array.from({ length: count }, (_, i) => ({ key: null, value: Buffer.from(`r${from + i}`) })),
  );
}

async function committed(logManager: LogManager, groupId: string, topic: string): Promise<number> {
  const fetched = await logManager.groups.fetchOffsets({ groupId, topics: [{ topic, partitions: [0] }] });
  return fetched.topics[0]!.partitions[0]!.offset;
}

/** Offsets delivered (with repeats), and the most handlers of the partition ever running at once. */
function recorder(): {
  offsets: number[];
  handler: (d: Delivery) => Promise<void>;
  distinct: () => number[];
  firsts: () => number[];
  maxInFlight: () => number;
} {
  const offsets: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  return {
    offsets,
    handler: async (d) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 1));
      offsets.push(d.offset);
      inFlight -= 1;
    },
    distinct: () => [...new Set(offsets)],
    // Each offset's first delivery, in the order they came: nothing overtook a record not yet handled.
    firsts: () => offsets.filter((o, i) => offsets.indexOf(o) === i),
    maxInFlight: () => maxInFlight,
  };
}

function coordinatorError(code: ErrorCode): () => never {
  return () => {
    throw new ConcordatError(`injected ${code}`, { code, retriable: code === ErrorCode.COORDINATOR_NOT_AVAILABLE });
  };
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('EmbeddedTransport group member supervision', () => {
  afterEach(() => disarmFaults());

  it('rejoins after the coordinator is not available at a heartbeat, and delivers every record', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 10);
    const groupId = unique('coordinator-away');
    const failures: ConsumerFailureEvent[] = [];
    const seen = recorder();
    await transportOver(logManager).subscribe({ groupId, topics: [topic], handler: seen.handler, onConsumerFailure: (event) => failures.push(event) });
    await waitFor(
      async () => (await committed(logManager, groupId, topic)) === 10,
      10_000,
      () => `${seen.distinct().length} of 10 delivered`,
    );
    armFault('embedded.before-heartbeat', coordinatorError(ErrorCode.COORDINATOR_NOT_AVAILABLE), { times: 2 });
    await waitFor(
      () => failures.length === 2,
      10_000,
      () => `${failures.length} failures; hits ${JSON.stringify(faultHits())}`,
    );
    await publish(logManager, topic, 10, 10);
    await waitFor(
      () => seen.distinct().length === 20,
      10_000,
      () => `${seen.distinct().length} of 20 delivered; hits ${JSON.stringify(faultHits())}`,
    );
    expect(seen.firsts()).toEqual(range(20));
    expect(seen.maxInFlight()).toBe(1);
    expect(failures.map((f) => [f.groupId, f.topic, f.partition, f.offset, f.failures, f.stalled, f.retryInMs])).toEqual([
      [groupId, undefined, undefined, undefined, 1, false, 20],
      [groupId, undefined, undefined, undefined, 2, false, 40],
    ]);
    expect((failures[0]!.error as ConcordatError).code).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
    await waitFor(
      async () => (await committed(logManager, groupId, topic)) === 20,
      5000,
      () => 'offset 20 not committed',
    );
  });

  it('stops the workers before rejoining after a heartbeat fails, so the partition is never consumed twice at once', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 0);
    const groupId = unique('heartbeat-fails');
    const failures: ConsumerFailureEvent[] = [];
    const seen = recorder();
    await transportOver(logManager).subscribe({ groupId, topics: [topic], handler: seen.handler, onConsumerFailure: (event) => failures.push(event) });
    armFault('embedded.before-heartbeat', 'throw', { times: 6 });
    for (let i = 0; i < 30; i++) {
      await publish(logManager, topic, i * 10, 10);
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    await waitFor(
      () => seen.distinct().length === 300,
      20_000,
      () => `${seen.distinct().length} of 300 delivered; hits ${JSON.stringify(faultHits())}`,
    );
    expect(seen.firsts()).toEqual(range(300));
    expect(seen.maxInFlight()).toBe(1);
    expect(failures.map((f) => f.failures)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(failures.map((f) => f.stalled)).toEqual([false, false, false, false, true, true]);
    expect(failures.map((f) => f.retryInMs)).toEqual([20, 40, 80, 100, 100, 100]);
    expect(failures.every((f) => f.error instanceof InjectedFault)).toBe(true);
    await waitFor(
      async () => (await committed(logManager, groupId, topic)) === 300,
      5000,
      () => 'offset 300 not committed',
    );
  });

  it('retries a join that fails before the first assignment; subscribe resolves and every record comes', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 20);
    const groupId = unique('join-fails');
    const failures: ConsumerFailureEvent[] = [];
    const seen = recorder();
    armFault('embedded.before-join', 'throw', { times: 3 });
    await transportOver(logManager).subscribe({ groupId, topics: [topic], handler: seen.handler, onConsumerFailure: (event) => failures.push(event) });
    await waitFor(
      () => seen.distinct().length === 20,
      10_000,
      () => `${seen.distinct().length} of 20 delivered`,
    );
    expect(seen.offsets).toEqual(range(20));
    expect(failures.map((f) => [f.failures, f.stalled, f.retryInMs, f.error instanceof InjectedFault])).toEqual([
      [1, false, 20, true],
      [2, false, 40, true],
      [3, false, 80, true],
    ]);
  });

  it('rejoins at once with a fresh member ID when the coordinator removed the member, without a report', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 5);
    const groupId = unique('unknown-member');
    const failures: ConsumerFailureEvent[] = [];
    const seen = recorder();
    await transportOver(logManager).subscribe({ groupId, topics: [topic], handler: seen.handler, onConsumerFailure: (event) => failures.push(event) });
    await waitFor(
      async () => (await committed(logManager, groupId, topic)) === 5,
      10_000,
      () => `${seen.distinct().length} of 5 delivered`,
    );
    // The coordinator forgets the member for real (as when its session expired): the heartbeat answers UNKNOWN_MEMBER_ID.
    const removed: string[] = [];
    armFault(
      'embedded.before-heartbeat',
      async () => {
        const members = logManager.groups.describeGroup(groupId).members.map((m) => ({ memberId: m.memberId }));
        removed.push(...members.map((m) => m.memberId));
        await logManager.groups.leaveGroup({ groupId, members });
      },
      { times: 1 },
    );
    await waitFor(
      () => faultHits()['embedded.before-heartbeat']! >= 3,
      10_000,
      () => `hits ${JSON.stringify(faultHits())}`,
    );
    await publish(logManager, topic, 5, 5);
    await waitFor(
      () => seen.distinct().length === 10,
      10_000,
      () => `${seen.distinct().length} of 10 delivered`,
    );
    expect(seen.firsts()).toEqual(range(10));
    expect(failures).toEqual([]);
    expect(removed).toHaveLength(1);
    expect(logManager.groups.describeGroup(groupId).members.map((m) => m.memberId)).not.toContain(removed[0]);
  });

  it('reports a refusal that cannot heal as stalled at once and keeps rejoining at the capped backoff', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 5);
    const groupId = unique('cannot-heal');
    const failures: ConsumerFailureEvent[] = [];
    const seen = recorder();
    await transportOver(logManager).subscribe({ groupId, topics: [topic], handler: seen.handler, onConsumerFailure: (event) => failures.push(event) });
    await waitFor(
      async () => (await committed(logManager, groupId, topic)) === 5,
      10_000,
      () => `${seen.distinct().length} of 5 delivered`,
    );
    armFault('embedded.before-join', coordinatorError(ErrorCode.INVALID_SESSION_TIMEOUT), { times: 3 });
    armFault('embedded.before-heartbeat', 'throw', { times: 1 });
    await waitFor(
      () => failures.length === 4,
      10_000,
      () => `${failures.length} failures; hits ${JSON.stringify(faultHits())}`,
    );
    await publish(logManager, topic, 5, 5);
    await waitFor(
      () => seen.distinct().length === 10,
      10_000,
      () => `${seen.distinct().length} of 10 delivered`,
    );
    expect(seen.firsts()).toEqual(range(10));
    expect(failures.map((f) => [f.failures, f.stalled, f.retryInMs])).toEqual([
      [1, false, 20],
      [2, true, 100],
      [3, true, 100],
      [4, true, 100],
    ]);
    expect(failures.slice(1).every((f) => (f.error as ConcordatError).code === ErrorCode.INVALID_SESSION_TIMEOUT)).toBe(true);
  });

  it('fails subscribe when the coordinator refuses the first join for good', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 1);
    const failures: ConsumerFailureEvent[] = [];
    const transport = transportOver(logManager, { sessionTimeoutMs: 1000 });
    const started = performance.now();
    await expect(
      transport.subscribe({
        groupId: unique('bad-session'),
        topics: [topic],
        handler: async () => undefined,
        onConsumerFailure: (event) => failures.push(event),
      }),
    ).rejects.toMatchObject({ code: ErrorCode.INVALID_SESSION_TIMEOUT });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(failures).toEqual([]);
  });

  it('closes promptly while the member waits to rejoin', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 3);
    const groupId = unique('close-in-backoff');
    const failures: ConsumerFailureEvent[] = [];
    const transport = transportOver(logManager, { retryBackoffMs: 20_000, retryBackoffMaxMs: 60_000 });
    const subscription = await transport.subscribe({
      groupId,
      topics: [topic],
      handler: async () => undefined,
      onConsumerFailure: (event) => failures.push(event),
    });
    await waitFor(
      async () => (await committed(logManager, groupId, topic)) === 3,
      10_000,
      () => 'offset 3 not committed',
    );
    armFault('embedded.before-heartbeat', 'throw', { times: 1_000 });
    await waitFor(
      () => failures.length === 1,
      5000,
      () => 'no failure reported',
    );
    expect(failures[0]!.retryInMs).toBe(20_000);
    const started = performance.now();
    await subscription.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(faultHits()['embedded.before-heartbeat']).toBe(1);
  });
});
