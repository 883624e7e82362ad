import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecordBatches, type CompressionType } from '../../../src/log/index.js';
import { fileNeedsTools, startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';
import { runOk } from './helpers/process.js';

/**
 * kcat 1.7.1 (librdkafka 2.0.2, Debian's package) against `concordat broker`:
 * producing and consuming, compressed batches of every codec, and the
 * balanced group consumer (-G).
 */
let t: TestBroker;
const toolsPresent = fileNeedsTools('kcat');

beforeAll(async () => {
  if (!toolsPresent) return;
  t = await startTestBroker({ autoCreateTopics: true, defaultPartitions: 3 });
});

afterAll(async () => {
  await t?.stop();
});

const kcat = (args: string[], input?: string) => runOk('kcat', ['-b', t.bootstrap, ...args], { input, timeoutMs: 30_000 });

async function storedBatches(topic: string, partition: number) {
  const { records } = await t.broker.logManager.read(topic, partition, 0, { maxBytes: 10 * 1024 * 1024 });
  return decodeRecordBatches(records);
}

describe('kcat', () => {
  it('produces keyed records and consumes them back with their partitions and offsets', async () => {
    const topic = uniqueName('kcat');
    const lines = Array.from({ length: 30 }, (_, i) => `key${i}:value ${i}`);
    await kcat(['-P', '-t', topic, '-K', ':', '-p', '1'], `${lines.join('\n')}\n`);
    const out = await kcat(['-C', '-t', topic, '-p', '1', '-o', 'beginning', '-e', '-q', '-f', '%p|%o|%k|%s\\n']);
    expect(out.trim().split('\n')).toEqual(lines.map((line, i) => `1|${i}|${line.replace(':', '|')}`));
    // Auto-created with the broker's default partition count; the other partitions stay empty.
    expect(t.broker.logManager.describeTopic(topic).partitions.map((p) => p.highWatermark)).toEqual([0, 30, 0]);
  });

  for (const codec of ['gzip', 'snappy', 'lz4', 'zstd'] as const satisfies readonly CompressionType[]) {
    it(`-z ${codec}: the broker stores the compressed batch as sent and serves it back`, async () => {
      const topic = uniqueName(`kcat-${codec}`);
      const values = Array.from({ length: 200 }, (_, i) => `${codec} record ${i} ${'x'.repeat(100)}`);
      await kcat(['-P', '-t', topic, '-p', '0', '-z', codec, '-X', 'linger.ms=100'], `${values.join('\n')}\n`);
      const batches = await storedBatches(topic, 0);
      expect(batches.length).toBeGreaterThan(0);
      expect(new Set(batches.map((b) => b.compression))).toEqual(new Set([codec]));
      expect(batches.flatMap((b) => b.records.map((r) => r.value?.toString()))).toEqual(values);
      const out = await kcat(['-C', '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%o %s\\n']);
      expect(out.trim().split('\n')).toEqual(values.map((v, i) => `${i} ${v}`));
    });
  }

  it('-G: a balanced consumer group reads every record once and commits where it stopped', async () => {
    const topic = uniqueName('kcat-group');
    const group = uniqueName('kcat-group');
    const values = Array.from({ length: 90 }, (_, i) => `v${i}`);
    // Round-robin over the three partitions: no key, librdkafka's default partitioner spreads them.
    for (let p = 0; p < 3; p += 1) {
      await kcat(['-P', '-t', topic, '-p', String(p)], `${values.filter((_, i) => i % 3 === p).join('\n')}\n`);
    }
    // Not `-o beginning`: kcat applies it to every assignment, so a member given a partition in a
    // rebalance would start it over. A new group starts at the earliest offset, then at its commits.
    const consume = () => kcat(['-G', group, '-X', 'auto.offset.reset=earliest', '-e', '-q', '-f', '%p|%o|%s\\n', '-X', 'session.timeout.ms=6000', topic]);
    const [first, second] = await Promise.all([consume(), consume()]);
    const seen = `${first}${second}`.trim().split('\n').filter(Boolean);
    expect(seen.map((line) => line.split('|')[2]).sort()).toEqual([...values].sort());
    expect(new Set(seen).size).toBe(90);
    // The group committed its position at the end of each partition.
    const offsets = await t.broker.logManager.groups.fetchOffsets({ groupId: group, topics: [{ topic, partitions: [0, 1, 2] }] });
    expect(offsets.topics[0]!.partitions.map((p) => p.offset)).toEqual([30, 30, 30]);
    // A new member of the same group starts from the committed offsets: nothing left to read.
    await kcat(['-P', '-t', topic, '-p', '2'], 'late\n');
    const again = await kcat(['-G', group, '-e', '-q', '-f', '%p|%o|%s\\n', topic]);
    expect(again.trim()).toBe('2|30|late');
  });

  it('-L lists the broker as its own controller and the topics', async () => {
    const topic = uniqueName('kcat-meta');
    await t.broker.logManager.createTopic(topic, { partitions: 2 });
    const out = await kcat(['-L', '-t', topic]);
    expect(out).toContain(`broker 1 at ${t.bootstrap} (controller)`);
    expect(out).toContain(`topic "${topic}" with 2 partitions:`);
    expect(out).toContain('partition 1, leader 1, replicas: 1, isrs: 1');
  });
});
