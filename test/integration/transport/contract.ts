import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Delivery, Subscription, Transport } from '../../../src/transport/index.js';
import { murmur2 } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';

/**
 * The contract every Transport keeps (src/transport/transport.ts), as one
 * reusable suite: `embedded.test.ts` runs it over the embedded log, the
 * kafkajs transport runs it against `concordat broker` and real Kafka.
 *
 * `makeTransport` returns a new, unconnected transport; every transport a
 * suite makes must reach the same backend (one log, one cluster), so two of
 * them can be two members of one group. Tests use unique topic and group
 * names and close what they open.
 */
export interface ContractOptions {
  /** Longest wait for a condition (deliveries, a rebalance), in ms. @default 20000 */
  waitMs?: number;
  /**
   * Set when the backend gives every topic this many partitions whatever
   * ensureTopics asks (librdkafka's mock cluster auto-creates topics with 4):
   * the partition arithmetic uses it, and the test that needs the requested
   * count to hold is skipped.
   */
  fixedPartitions?: number;
}

export function transportContract(name: string, makeTransport: () => Promise<Transport>, options: ContractOptions = {}): void {
  const waitMs = options.waitMs ?? 20_000;
  const partitionsOf = (requested: number): number => options.fixedPartitions ?? requested;

  describe(`Transport contract: ${name}`, () => {
    const opened: Transport[] = [];

    async function transport(): Promise<Transport> {
      const made = await makeTransport();
      opened.push(made);
      await made.connect();
      return made;
    }

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((t) => t.close()));
    });

    it('acknowledges every record in input order, keyed records on murmur2(key) % partitions, offsets contiguous', async () => {
      const t = await transport();
      const topic = unique('acks');
      await t.ensureTopics([{ name: topic, partitions: 3 }]);
      const keys = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'];
      const acks = await t.publish(keys.map((key, i) => ({ topic, key, value: Buffer.from(`v${i}`), headers: { ce_id: `id-${i}` } })));
      expect(acks).toHaveLength(keys.length);
      const nextOffset = new Map<number, number>();
      acks.forEach((ack, i) => {
        expect(ack.topic).toBe(topic);
        expect(ack.partition).toBe((murmur2(Buffer.from(keys[i]!)) & 0x7fffffff) % partitionsOf(3));
        expect(ack.offset).toBe(nextOffset.get(ack.partition) ?? 0);
        nextOffset.set(ack.partition, ack.offset + 1);
      });
      // A second publish continues the offsets.
      const [again] = await t.publish([{ topic, key: 'alpha', value: null, headers: {} }]);
      expect(again!.offset).toBe(nextOffset.get(again!.partition));
    });

    it.skipIf(options.fixedPartitions !== undefined)('ensureTopics leaves an existing topic as it is', async () => {
      const t = await transport();
      const topic = unique('ensure');
      await t.ensureTopics([{ name: topic, partitions: 2 }]);
      await t.ensureTopics([{ name: topic, partitions: 5 }]);
      const acks = await t.publish(Array.from({ length: 20 }, (_, i) => ({ topic, key: `k${i}`, value: null, headers: {} })));
      expect(new Set(acks.map((a) => a.partition))).toEqual(new Set([0, 1]));
    });

    it('delivers records of one key in publish order, with headers, key, value and timestamp', async () => {
      const t = await transport();
      const topic = unique('order');
      await t.ensureTopics([{ name: topic, partitions: 4 }]);
      const keys = ['a', 'b', 'c', 'd', 'e'];
      for (let round = 0; round < 4; round++) {
        await t.publish(
          keys.map((key) => ({
            topic,
            key,
            value: Buffer.from(`${key}-${round}`),
            headers: { ce_id: `${key}-${round}`, ce_type: Buffer.from('test.event') },
            timestampMs: 1_700_000_000_000 + round,
          })),
        );
      }
      const seen = new Map<string, string[]>();
      const deliveries: Delivery[] = [];
      await t.subscribe({
        groupId: unique('order-group'),
        topics: [topic],
        handler: async (delivery) => {
          deliveries.push(delivery);
          const key = delivery.key!.toString();
          seen.set(key, [...(seen.get(key) ?? []), delivery.value!.toString()]);
        },
      });
      await waitFor(
        () => deliveries.length === 20,
        waitMs,
        () => `${deliveries.length} of 20 delivered`,
      );
      for (const key of keys) expect(seen.get(key)).toEqual([0, 1, 2, 3].map((round) => `${key}-${round}`));
      const first = deliveries.find((d) => d.value!.toString() === 'c-2')!;
      expect(first.headers.ce_id!.toString()).toBe('c-2');
      expect(first.headers.ce_type!.toString()).toBe('test.event');
      expect(first.timestampMs).toBe(1_700_000_000_002);
      expect(first.partition).toBe((murmur2(Buffer.from('c')) & 0x7fffffff) % partitionsOf(4));
    });

    it('refuses a subscription to a topic that does not exist, naming it, and keeps no subscription behind', async () => {
      const t = await transport();
      const present = unique('present');
      const missing = unique('missing');
      await t.ensureTopics([{ name: present, partitions: 1 }]);
      await expect(t.subscribe({ groupId: unique('missing-group'), topics: [present, missing], handler: async () => undefined })).rejects.toMatchObject({
        code: 'UNKNOWN_TOPIC_OR_PARTITION',
        message: `cannot subscribe to topic '${missing}': it does not exist; create it with ensureTopics first`,
        context: { topic: missing },
      });
    });

    it('redelivers a record whose handler rejected, after a backoff, before any later record of its partition', async () => {
      const t = await transport();
      const topic = unique('retry');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      await t.publish(['r0', 'r1', 'r2', 'r3'].map((v) => ({ topic, key: 'same', value: Buffer.from(v), headers: {} })));
      const attempts: string[] = [];
      const errors: string[] = [];
      let failuresLeft = 2;
      await t.subscribe({
        groupId: unique('retry-group'),
        topics: [topic],
        handler: async (delivery) => {
          const value = delivery.value!.toString();
          attempts.push(value);
          if (value === 'r1' && failuresLeft > 0) {
            failuresLeft -= 1;
            throw new Error(`transient failure of ${value}`);
          }
        },
        onHandlerError: (error, delivery) => errors.push(`${(error as Error).message}@${delivery.offset}`),
      });
      await waitFor(
        () => attempts.includes('r3'),
        waitMs,
        () => `attempts so far: ${attempts.join(',')}`,
      );
      expect(attempts).toEqual(['r0', 'r1', 'r1', 'r1', 'r2', 'r3']);
      expect(errors).toEqual(['transient failure of r1@1', 'transient failure of r1@1']);
    });

    it('commits an offset only after its handler resolved: a reopened group resumes at the first unhandled record', async () => {
      const t = await transport();
      const topic = unique('resume');
      const groupId = unique('resume-group');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      await t.publish(Array.from({ length: 8 }, (_, i) => ({ topic, key: 'k', value: Buffer.from(`m${i}`), headers: {} })));
      const handled: string[] = [];
      let blockedAttempts = 0;
      const first = await t.subscribe({
        groupId,
        topics: [topic],
        handler: async (delivery) => {
          const value = delivery.value!.toString();
          if (value === 'm5') {
            blockedAttempts += 1;
            throw new Error('not yet');
          }
          handled.push(value);
        },
      });
      await waitFor(
        () => blockedAttempts >= 2,
        waitMs,
        () => `handled ${handled.join(',')}`,
      );
      await first.close();
      expect(handled).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);

      const t2 = await transport();
      const resumed: string[] = [];
      await t2.subscribe({
        groupId,
        topics: [topic],
        handler: async (delivery) => {
          resumed.push(delivery.value!.toString());
        },
      });
      await waitFor(
        () => resumed.length >= 3,
        waitMs,
        () => `resumed ${resumed.join(',')}`,
      );
      expect(resumed).toEqual(['m5', 'm6', 'm7']);
    });

    it('starts a new group at the latest offset when asked (offsetReset latest)', async () => {
      const t = await transport();
      const topic = unique('latest');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      await t.publish([{ topic, key: 'k', value: Buffer.from('old'), headers: {} }]);
      const seen: string[] = [];
      await t.subscribe({
        groupId: unique('latest-group'),
        topics: [topic],
        offsetReset: 'latest',
        handler: async (delivery) => {
          seen.push(delivery.value!.toString());
        },
      });
      await waitFor(
        async () => {
          if (seen.length === 0) await t.publish([{ topic, key: 'k', value: Buffer.from('new'), headers: {} }]);
          return seen.length > 0;
        },
        waitMs,
        () => 'nothing delivered',
      );
      expect(seen.every((value) => value === 'new')).toBe(true);
    });

    it('splits the partitions of a topic between two members of one group', async () => {
      const a = await transport();
      const b = await transport();
      const topic = unique('split');
      const groupId = unique('split-group');
      await a.ensureTopics([{ name: topic, partitions: 4 }]);
      const byMember: Record<'a' | 'b', Delivery[]> = { a: [], b: [] };
      const subscriptions: Subscription[] = [];
      for (const [member, t] of [
        ['a', a],
        ['b', b],
      ] as const) {
        subscriptions.push(
          await t.subscribe({
            groupId,
            topics: [topic],
            handler: async (delivery) => {
              byMember[member].push(delivery);
            },
          }),
        );
      }
      const keys = keysCoveringPartitions(4);
      let round = 0;
      // Publish rounds until both members receive records: the group has settled with both.
      await waitFor(
        async () => {
          await a.publish(keys.map((key) => ({ topic, key, value: Buffer.from(`warmup-${round}`), headers: {} })));
          round += 1;
          return byMember.a.length > 0 && byMember.b.length > 0;
        },
        waitMs,
        () => `a got ${byMember.a.length}, b got ${byMember.b.length}`,
      );
      const total = () => byMember.a.length + byMember.b.length;
      await waitFor(
        () => total() >= keys.length * round,
        waitMs,
        () => `${total()} of ${keys.length * round}`,
      );
      const before = { a: byMember.a.length, b: byMember.b.length };
      await a.publish(keys.map((key) => ({ topic, key, value: Buffer.from('final'), headers: {} })));
      await waitFor(
        () => total() >= keys.length * (round + 1),
        waitMs,
        () => `${total()} of ${keys.length * (round + 1)}`,
      );
      const partitionsOf = (member: 'a' | 'b') => new Set(byMember[member].slice(before[member]).map((d) => d.partition));
      const pa = partitionsOf('a');
      const pb = partitionsOf('b');
      expect(pa.size).toBeGreaterThan(0);
      expect(pb.size).toBeGreaterThan(0);
      expect([...pa].filter((p) => pb.has(p))).toEqual([]);
      expect(new Set([...pa, ...pb])).toEqual(new Set([0, 1, 2, 3]));
      await Promise.all(subscriptions.map((s) => s.close()));
    });

    it('hands a closed member’s partitions to the member that stays, resuming after its last handled record', async () => {
      const a = await transport();
      const b = await transport();
      const topic = unique('handover');
      const groupId = unique('handover-group');
      await a.ensureTopics([{ name: topic, partitions: 2 }]);
      const keys = keysCoveringPartitions(partitionsOf(2));
      const got: Record<'a' | 'b', string[]> = { a: [], b: [] };
      const subscribe = (t: Transport, member: 'a' | 'b') =>
        t.subscribe({
          groupId,
          topics: [topic],
          handler: async (delivery) => {
            got[member].push(delivery.value!.toString());
          },
        });
      await subscribe(a, 'a');
      const bSubscription = await subscribe(b, 'b');
      let round = 0;
      await waitFor(
        async () => {
          await a.publish(keys.map((key) => ({ topic, key, value: Buffer.from(`r${round}-${key}`), headers: {} })));
          round += 1;
          return got.a.length > 0 && got.b.length > 0;
        },
        waitMs,
        () => `a got ${got.a.length}, b got ${got.b.length}`,
      );
      const published = keys.length * round;
      await waitFor(
        () => new Set([...got.a, ...got.b]).size === published,
        waitMs,
        () => `${new Set([...got.a, ...got.b]).size} of ${published}`,
      );
      await bSubscription.close();
      const bCount = got.b.length;
      await a.publish(keys.map((key) => ({ topic, key, value: Buffer.from(`after-${key}`), headers: {} })));
      await waitFor(
        () => keys.every((key) => got.a.includes(`after-${key}`)),
        waitMs,
        () => `a got ${got.a.filter((v) => v.startsWith('after-')).length} of ${keys.length}`,
      );
      expect(got.b.length).toBe(bCount);
      // Nothing b handled (and committed on close) is handed to a again.
      const handledByB = new Set(got.b);
      expect(got.a.filter((value) => handledByB.has(value))).toEqual([]);
    });

    it('gives every record to each of two separate groups', async () => {
      const t = await transport();
      const topic = unique('fanout');
      await t.ensureTopics([{ name: topic, partitions: 3 }]);
      const values = Array.from({ length: 30 }, (_, i) => `f${i}`);
      await t.publish(values.map((v, i) => ({ topic, key: `k${i % 7}`, value: Buffer.from(v), headers: {} })));
      const got: Record<string, string[]> = { one: [], two: [] };
      for (const group of ['one', 'two']) {
        await t.subscribe({
          groupId: unique(`fanout-${group}`),
          topics: [topic],
          handler: async (delivery) => {
            got[group]!.push(delivery.value!.toString());
          },
        });
      }
      await waitFor(
        () => got.one!.length >= 30 && got.two!.length >= 30,
        waitMs,
        () => `one ${got.one!.length}, two ${got.two!.length}`,
      );
      expect([...got.one!].sort()).toEqual([...values].sort());
      expect([...got.two!].sort()).toEqual([...values].sort());
    });

    it('delivers batches: one partition each, consecutive offsets, at most batchRecordsMax, every record once, per-key order', async () => {
      const t = await transport();
      const topic = unique('batch-order');
      await t.ensureTopics([{ name: topic, partitions: 3 }]);
      const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
      for (let round = 0; round < 5; round++) {
        await t.publish(keys.map((key) => ({ topic, key, value: Buffer.from(`${key}-${round}`), headers: { ce_id: `${key}-${round}` } })));
      }
      const batches: Delivery[][] = [];
      await t.subscribe({
        groupId: unique('batch-order-group'),
        topics: [topic],
        batchRecordsMax: 4,
        batchHandler: async (deliveries) => {
          batches.push([...deliveries]);
        },
      });
      const total = () => batches.reduce((sum, batch) => sum + batch.length, 0);
      await waitFor(
        () => total() >= 30,
        waitMs,
        () => `${total()} of 30 delivered`,
      );
      for (const batch of batches) {
        expect(batch.length).toBeGreaterThanOrEqual(1);
        expect(batch.length).toBeLessThanOrEqual(4);
        expect(new Set(batch.map((d) => d.partition)).size).toBe(1);
        batch.forEach((delivery, i) => i > 0 && expect(delivery.offset).toBe(batch[i - 1]!.offset + 1));
      }
      // Five publishes of six records: some batch held more than one record (what one read returned, cut at 4).
      expect(batches.some((batch) => batch.length > 1)).toBe(true);
      const values = batches.flat().map((d) => d.value!.toString());
      expect([...values].sort()).toEqual(keys.flatMap((key) => [0, 1, 2, 3, 4].map((round) => `${key}-${round}`)).sort());
      for (const key of keys) expect(values.filter((v) => v.startsWith(`${key}-`))).toEqual([0, 1, 2, 3, 4].map((round) => `${key}-${round}`));
    });

    it("commits a batch's offsets only after it resolved: a reopened group resumes at the first record of a batch that rejected", async () => {
      const t = await transport();
      const topic = unique('batch-resume');
      const groupId = unique('batch-resume-group');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      // One publish: one read returns all eight, cut into [m0 m1 m2] [m3 m4 m5] [m6 m7].
      await t.publish(Array.from({ length: 8 }, (_, i) => ({ topic, key: 'k', value: Buffer.from(`m${i}`), headers: {} })));
      const handled: string[] = [];
      let rejections = 0;
      const first = await t.subscribe({
        groupId,
        topics: [topic],
        batchRecordsMax: 3,
        batchHandler: async (deliveries) => {
          for (const delivery of deliveries) {
            const value = delivery.value!.toString();
            if (value === 'm5') {
              rejections += 1;
              throw new Error('not yet');
            }
            // m3 and m4 are handled before their batch rejects: their offsets must not be committed anyway.
            handled.push(value);
          }
        },
      });
      await waitFor(
        () => rejections >= 2,
        waitMs,
        () => `handled ${handled.join(',')}`,
      );
      await first.close();
      expect(handled.slice(0, 5)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
      expect(handled.filter((v) => v === 'm0' || v === 'm1' || v === 'm2')).toEqual(['m0', 'm1', 'm2']);

      const t2 = await transport();
      const resumed: string[] = [];
      await t2.subscribe({
        groupId,
        topics: [topic],
        batchHandler: async (deliveries) => {
          resumed.push(...deliveries.map((d) => d.value!.toString()));
        },
      });
      await waitFor(
        () => resumed.length >= 5,
        waitMs,
        () => `resumed ${resumed.join(',')}`,
      );
      expect(resumed).toEqual(['m3', 'm4', 'm5', 'm6', 'm7']);
    });

    it('delivers a rejected batch again from its first record, after a backoff, before any later record of its partition', async () => {
      const t = await transport();
      const topic = unique('batch-retry');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      await t.publish(Array.from({ length: 8 }, (_, i) => ({ topic, key: 'same', value: Buffer.from(`r${i}`), headers: {} })));
      const calls: string[] = [];
      const errors: string[] = [];
      const times: number[] = [];
      let failuresLeft = 2;
      await t.subscribe({
        groupId: unique('batch-retry-group'),
        topics: [topic],
        batchRecordsMax: 3,
        batchHandler: async (deliveries) => {
          calls.push(deliveries.map((d) => d.value!.toString()).join(' '));
          times.push(Date.now());
          if (deliveries.some((d) => d.value!.toString() === 'r4') && failuresLeft > 0) {
            failuresLeft -= 1;
            throw new Error('transient failure of the batch');
          }
        },
        onHandlerError: (error, delivery) => errors.push(`${(error as Error).message}@${delivery.offset}`),
      });
      await waitFor(
        () => calls.some((c) => c.includes('r7')),
        waitMs,
        () => `calls so far: ${calls.join(' | ')}`,
      );
      expect(calls).toEqual(['r0 r1 r2', 'r3 r4 r5', 'r3 r4 r5', 'r3 r4 r5', 'r6 r7']);
      expect(errors).toEqual(['transient failure of the batch@3', 'transient failure of the batch@3']);
      // A backoff (20 ms in these suites) before the redelivery.
      expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(15);
    });

    it('refuses a subscription with both handler and batchHandler, with neither, or a bad batchRecordsMax', async () => {
      const t = await transport();
      const topic = unique('batch-options');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      const handler = async (): Promise<void> => undefined;
      await expect(t.subscribe({ groupId: unique('g'), topics: [topic], handler, batchHandler: handler })).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        message: expect.stringContaining('give exactly one of handler and batchHandler'),
      });
      await expect(t.subscribe({ groupId: unique('g'), topics: [topic] })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
      await expect(t.subscribe({ groupId: unique('g'), topics: [topic], batchHandler: handler, batchRecordsMax: 0 })).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        message: 'invalid options: subscribe.batchRecordsMax: must be an integer in 1..10000 (got 0)',
      });
    });

    it('close is idempotent and publish after close fails', async () => {
      const t = await transport();
      await t.close();
      await t.close();
      await expect(t.publish([{ topic: unique('closed'), key: null, value: null, headers: {} }])).rejects.toMatchObject({
        code: 'TRANSPORT_CLOSED',
      });
    });
  });
}

/** A name no other test uses. */
export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Keys whose murmur2 partitions cover 0..partitions-1, several per partition. */
function keysCoveringPartitions(partitions: number): string[] {
  const perPartition = new Map<number, string[]>();
  for (let i = 0; perPartition.size < partitions || [...perPartition.values()].some((k) => k.length < 3); i++) {
    const key = `key-${i}`;
    const partition = (murmur2(Buffer.from(key)) & 0x7fffffff) % partitions;
    const list = perPartition.get(partition) ?? [];
    if (list.length < 3) list.push(key);
    perPartition.set(partition, list);
  }
  return [...perPartition.values()].flat();
}

/** `until` in the transport tests' shape: fails with `describe()`, what was seen, after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, describe: () => string): Promise<void> {
  await until(condition, { timeoutMs, message: describe });
}
