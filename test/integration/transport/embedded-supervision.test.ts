import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import type { LogManager } from '../../../src/log/index.js';
import { armFault, disarmFaults, faultHits, InjectedFault } from '../../../src/observability/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import type { ConsumerFailureEvent, Delivery } from '../../../src/transport/index.js';
import { openLog, tempDir } from '../log/helpers.js';
import { unique, waitFor } from './contract.js';

// A partition worker that fails outside the handler (fetching the committed
// offset, decoding a read, its own bookkeeping) is restarted from the
// committed offset after a backoff, and says so; these tests make the real
// worker over a real log fail at its fault points.

const FAST = { heartbeatIntervalMs: 100, maxWaitMs: 200, retryBackoffMs: 20, retryBackoffMaxMs: 100, sessionTimeoutMs: 6000 };

function transportOver(logManager: LogManager, consumer: object = {}): EmbeddedTransport {
  const transport = new EmbeddedTransport(logManager, { consumer: { ...FAST, ...consumer } });
  onTestFinished(() => transport.close());
  return transport;
}

async function topicWith(logManager: LogManager, records: number): Promise<string> {
  const topic = unique('supervised');
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

/** Offsets delivered, in order, with repeats; and a check that 0..count-1 all came, in order, none skipped. */
function recorder(): { offsets: number[]; handler: (d: Delivery) => Promise<void>; distinct: () => number[] } {
  const offsets: number[] = [];
  return {
    offsets,
    handler: async (d) => void offsets.push(d.offset),
    distinct: () => [...new Set(offsets)],
  };
}

describe('EmbeddedTransport partition worker supervision', () => {
  afterEach(() => disarmFaults());

  it('restarts a worker whose committed-offset fetch failed, and delivers every record', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 20);
    const groupId = unique('fetch-fails');
    const failures: ConsumerFailureEvent[] = [];
    armFault('embedded.before-fetch-offset', 'throw', { times: 3 });
    const seen = recorder();
    await transportOver(logManager).subscribe({ groupId, topics: [topic], handler: seen.handler, onConsumerFailure: (event) => failures.push(event) });
    await waitFor(
      () => seen.distinct().length === 20,
      10_000,
      () => `${seen.distinct().length} of 20 delivered; hits ${JSON.stringify(faultHits())}`,
    );
    expect(seen.offsets).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(failures.map((f) => [f.groupId, f.topic, f.partition, f.failures, f.stalled])).toEqual([
      [groupId, topic, 0, 1, false],
      [groupId, topic, 0, 2, false],
      [groupId, topic, 0, 3, false],
    ]);
    expect(failures[0]!.error).toBeInstanceOf(InjectedFault);
    expect(failures.map((f) => f.retryInMs)).toEqual([20, 40, 80]);
    await waitFor(
      async () => (await committed(logManager, groupId, topic)) === 20,
      5000,
      () => 'offset 20 not committed',
    );
  });

  it('a worker of a new group (offsetReset latest) restarted before its first commit starts where it first did, skipping nothing', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 10); // before the group: not for it
    const groupId = unique('latest-restart');
    const seen = recorder();
    await transportOver(logManager).subscribe({ groupId, topics: [topic], offsetReset: 'latest', handler: seen.handler });
    // The first read of the new records fails twice; meanwhile more arrive, moving the latest offset on.
    armFault('embedded.before-decode', 'throw', { times: 2 });
    await publish(logManager, topic, 10, 5);
    await waitFor(
      () => (faultHits()['embedded.before-decode'] ?? 0) >= 1,
      5000,
      () => 'the worker never read',
    );
    await publish(logManager, topic, 15, 5);
    await waitFor(
      () => seen.distinct().length === 10,
      10_000,
      () => `delivered ${JSON.stringify(seen.distinct())}`,
    );
    expect(seen.distinct()).toEqual(Array.from({ length: 10 }, (_, i) => 10 + i));
  });

  it('restarts from the committed offset after a read fails to decode, skipping nothing', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 10);
    const groupId = unique('decode-fails');
    const failures: ConsumerFailureEvent[] = [];
    const seen = recorder();
    await transportOver(logManager).subscribe({ groupId, topics: [topic], handler: seen.handler, onConsumerFailure: (event) => failures.push(event) });
    await waitFor(
      () => seen.distinct().length === 10,
      10_000,
      () => `${seen.distinct().length} of 10 delivered`,
    );
    await waitFor(
      async () => (await committed(logManager, groupId, topic)) === 10,
      5000,
      () => 'offset 10 not committed',
    );
    armFault('embedded.before-decode', 'throw', { times: 4 });
    await publish(logManager, topic, 10, 10);
    await waitFor(
      () => seen.distinct().length === 20,
      10_000,
      () => `${seen.distinct().length} of 20 delivered; hits ${JSON.stringify(faultHits())}`,
    );
    expect(faultHits()['embedded.before-decode']).toBeGreaterThanOrEqual(5);
    expect(seen.distinct()).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // Each offset's first delivery comes in order: nothing overtook a record that was not yet handled.
    expect(seen.offsets.filter((o, i) => seen.offsets.indexOf(o) === i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(failures.map((f) => [f.offset, f.failures])).toEqual([
      [10, 1],
      [10, 2],
      [10, 3],
      [10, 4],
    ]);
    await waitFor(
      async () => (await committed(logManager, groupId, topic)) === 20,
      5000,
      () => 'offset 20 not committed',
    );
  });

  it('keeps retrying a failure that never heals at the capped backoff, reports it stalled, and a new round resets the count', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 5);
    const groupId = unique('never-heals');
    const failures: ConsumerFailureEvent[] = [];
    const seen = recorder();
    armFault('embedded.before-decode', 'throw', { times: 8 });
    await transportOver(logManager).subscribe({ groupId, topics: [topic], handler: seen.handler, onConsumerFailure: (event) => failures.push(event) });
    await waitFor(
      () => failures.length === 8,
      10_000,
      () => `${failures.length} failures`,
    );
    expect(seen.offsets).toEqual([]);
    expect(failures.map((f) => f.stalled)).toEqual([false, false, false, false, true, true, true, true]);
    expect(failures.map((f) => f.retryInMs)).toEqual([20, 40, 80, 100, 100, 100, 100, 100]);
    expect(failures.every((f) => f.offset === 0)).toBe(true);
    await waitFor(
      () => seen.distinct().length === 5,
      10_000,
      () => `${seen.distinct().length} of 5 delivered`,
    );
    armFault('embedded.before-decode', 'throw', { times: 1 });
    await publish(logManager, topic, 5, 1);
    await waitFor(
      () => failures.length === 9,
      10_000,
      () => `${failures.length} failures`,
    );
    expect([failures[8]!.failures, failures[8]!.offset, failures[8]!.stalled]).toEqual([1, 5, false]);
    await waitFor(
      () => seen.distinct().length === 6,
      10_000,
      () => `${seen.distinct().length} of 6 delivered`,
    );
  });

  it('closes promptly while a failed worker waits to restart', async () => {
    const logManager = await openLog(await tempDir());
    const topic = await topicWith(logManager, 3);
    const groupId = unique('close-in-backoff');
    const failures: ConsumerFailureEvent[] = [];
    armFault('embedded.before-fetch-offset', 'throw', { times: 1_000 });
    const transport = transportOver(logManager, { retryBackoffMs: 20_000, retryBackoffMaxMs: 60_000 });
    const subscription = await transport.subscribe({
      groupId,
      topics: [topic],
      handler: async () => undefined,
      onConsumerFailure: (event) => failures.push(event),
    });
    await waitFor(
      () => failures.length === 1,
      5000,
      () => 'no failure reported',
    );
    expect(failures[0]!.retryInMs).toBe(20_000);
    const started = performance.now();
    await subscription.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(faultHits()['embedded.before-fetch-offset']).toBe(1);
  });
});
