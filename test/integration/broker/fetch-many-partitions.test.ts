import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';
import { until } from '../../../src/testing/index.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * A long-polling Fetch across many partitions waits on every partition at
 * once, under one abort signal: it must not trip Node's
 * MaxListenersExceededWarning (10 listeners per signal by default).
 */
let t: TestBroker;

beforeAll(async () => {
  t = await startTestBroker();
});

afterAll(async () => {
  await t?.stop();
});

function fetchV11(topic: string, partitions: number[], maxWaitMs: number): Buffer {
  const w = new Writer()
    .int32(-1)
    .int32(maxWaitMs)
    .int32(1)
    .int32(1024 * 1024)
    .int8(0)
    .int32(0)
    .int32(-1);
  w.array([topic], (tw, name) =>
    tw.string(name).array(partitions, (pw, index) =>
      pw
        .int32(index)
        .int32(-1)
        .int64(0)
        .int64(-1)
        .int32(1024 * 1024),
    ),
  );
  w.array([], () => {}).string('');
  return w.toBuffer();
}

/** [partition, error code, record bytes] of each partition of a Fetch v11 response. */
function fetched(body: Buffer): [number, number, number][] {
  const r = new Reader(body);
  r.int32();
  expect(r.int16()).toBe(0);
  r.int32();
  return r
    .array((topic) => {
      topic.string();
      return topic.array((p) => {
        const partition = p.int32();
        const errorCode = p.int16();
        p.int64();
        p.int64();
        p.int64();
        p.nullableArray((a) => [a.int64(), a.int64()]);
        p.int32();
        return [partition, errorCode, p.nullableBytes()?.length ?? -1] as [number, number, number];
      });
    })
    .flat();
}

describe('Fetch across many partitions', () => {
  it('16 partitions long-poll together without a MaxListenersExceededWarning, and the one that grows answers', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    const client = await RawClient.connect(t.port);
    try {
      const topic = uniqueName('many');
      const partitions = Array.from({ length: 16 }, (_, i) => i);
      await t.broker.logManager.createTopic(topic, { partitions: partitions.length });
      const response = client.request(1, 11, fetchV11(topic, partitions, 10_000));
      // The fetch finds nothing and waits on all 16 partitions; an append to the last one wakes it.
      await until(() => partitions.every((p) => t.broker.logManager.describePartition(topic, p).readsWaiting === 1), {
        timeoutMs: 10_000,
        message: 'the fetch waiting on all 16 partitions',
      });
      await t.broker.logManager.appendRecords(topic, 15, [{ key: null, value: Buffer.from('wake'), headers: [] }]);
      const result = fetched(await response);
      expect(result.slice(0, 15)).toEqual(partitions.slice(0, 15).map((p) => [p, 0, 0]));
      expect(result[15]).toEqual([15, 0, expect.any(Number)]);
      expect(result[15]![2]).toBeGreaterThan(61);
      // process.emitWarning emits on the next tick: let it.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      client.close();
    }
  });
});
