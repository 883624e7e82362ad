import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogManager } from '../../../src/log/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { transportContract, unique } from './contract.js';

let dataDir: string;
let logManager: LogManager;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'concordat-embedded-'));
  logManager = await LogManager.open({ dataDir });
});

afterAll(async () => {
  await logManager?.close();
  await rm(dataDir, { recursive: true, force: true });
});

// Every transport of the suite shares the one log, as members on one broker would.
transportContract(
  'embedded',
  async () => new EmbeddedTransport(logManager, { consumer: { heartbeatIntervalMs: 200, maxWaitMs: 500, retryBackoffMs: 20, retryBackoffMaxMs: 100 } }),
);

describe('EmbeddedTransport over its own log', () => {
  it('opens the log in dataDir, publishes durably, and closes it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concordat-embedded-own-'));
    try {
      const transport = new EmbeddedTransport({ dataDir: dir });
      await transport.connect();
      await transport.connect();
      const topic = unique('own');
      await transport.ensureTopics([{ name: topic, partitions: 2 }]);
      const acks = await transport.publish([{ topic, key: 'k', value: Buffer.from('v'), headers: {} }]);
      expect(acks).toHaveLength(1);
      await transport.close();
      const reopened = await LogManager.open({ dataDir: dir });
      try {
        expect(reopened.describeTopic(topic).partitions[acks[0]!.partition]!.highWatermark).toBe(1);
      } finally {
        await reopened.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to subscribe to a topic that does not exist', async () => {
    const transport = new EmbeddedTransport(logManager);
    const topic = unique('missing');
    await expect(transport.subscribe({ groupId: unique('g'), topics: [topic], handler: async () => {} })).rejects.toThrow(
      `cannot subscribe to topic '${topic}': it does not exist; create it with ensureTopics first`,
    );
    await transport.close();
  });

  it('names the bad option', () => {
    expect(() => new EmbeddedTransport(logManager, { consumer: { maxWaitMs: 0 } })).toThrow(
      'invalid options: embeddedTransport.consumer.maxWaitMs: Too small: expected number to be >=1 (got 0)',
    );
  });
});
