import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport, KafkaTransport, type Delivery, type Transport } from '../../../src/transport/index.js';
import { startTestBroker, uniqueName, type TestBroker } from '../broker/helpers/broker.js';

/**
 * Transport.consumerLag, behind the `concordat_consumer_lag` gauge: the
 * embedded log's committed offsets, and kafkajs's admin (OffsetFetch +
 * ListOffsets) against `concordat broker` over real TCP.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

let broker: TestBroker;
let dir: string;
beforeAll(async () => {
  broker = await startTestBroker();
  dir = await mkdtemp(join(tmpdir(), 'concordat-lag-'));
});
afterAll(async () => {
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
});

const transports: Record<string, () => Transport> = {
  embedded: () => new EmbeddedTransport({ dataDir: join(dir, uniqueName('log')) }),
  kafka: () => new KafkaTransport({ brokers: [broker.bootstrap], retries: 1 }),
};

describe.each(Object.keys(transports))('%s transport: consumerLag', (kind) => {
  it('counts from the log start before the group commits, falls to 0 once it consumed, and leaves out unknown topics', async () => {
    const transport = transports[kind]!();
    const topic = uniqueName('lag');
    const group = uniqueName('lag-group');
    try {
      expect(await transport.consumerLag!(group, [topic])).toEqual([]);
      await transport.connect();
      await transport.ensureTopics([{ name: topic, partitions: 2 }]);
      const acks = await transport.publish([0, 1, 2].map((n) => ({ topic, key: 'same-key', value: Buffer.from(String(n)), headers: {} })));
      const partition = acks[0]!.partition;
      const lags = await transport.consumerLag!(group, [topic, uniqueName('missing')]);
      expect(lags).toEqual([
        { topic, partition: 0, committedOffset: -1, highWatermark: partition === 0 ? 3 : 0, lag: partition === 0 ? 3 : 0 },
        { topic, partition: 1, committedOffset: -1, highWatermark: partition === 1 ? 3 : 0, lag: partition === 1 ? 3 : 0 },
      ]);
      const seen: Delivery[] = [];
      const subscription = await transport.subscribe({
        groupId: group,
        topics: [topic],
        handler: async (delivery) => {
          seen.push(delivery);
        },
      });
      const after = await until(
        async () => {
          const current = await transport.consumerLag!(group, [topic]);
          return current.every((lag) => lag.lag === 0) ? current : undefined;
        },
        { intervalMs: 50, message: 'the lag to fall to 0' },
      );
      expect(seen).toHaveLength(3);
      expect(after.find((lag) => lag.partition === partition)).toEqual({ topic, partition, committedOffset: 3, highWatermark: 3, lag: 0 });
      await subscription.close();
    } finally {
      await transport.close();
    }
    expect(await transport.consumerLag!(group, [topic])).toEqual([]);
  });
});
