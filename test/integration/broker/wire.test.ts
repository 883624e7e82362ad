import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { decodeRecordBatches, encodeRecordBatch } from '../../../src/log/index.js';
import { RawClient } from './helpers/raw-client.js';
import { startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';
import { until } from '../../../src/testing/index.js';

/**
 * The broker's wire behaviour checked byte by byte with a bare TCP client:
 * version negotiation, framing limits, what a bad frame does to its own
 * connection and to the others, response order, acks = 0, long polls.
 */

// What KAFKA-PROTOCOL.md says to advertise, key → [min, max], the transaction APIs (24-26, 28; KIP-98), DescribeConfigs (32) for kafkajs (v2) and
// librdkafka (v1), the admin APIs of issue 13 (CreateTopics to v5, DeleteRecords 21, AlterConfigs 33, DescribeLogDirs 35, CreatePartitions 37,
// DeleteGroups 42, IncrementalAlterConfigs 44, OffsetDelete 47, DescribeCluster 60), and the flexible versions (KIP-482) librdkafka 2.3+ uses
// (issue 13, "Versions": docs/broker.md's table says why each range ends where it does).
const ADVERTISED: [number, number, number][] = [
  [0, 0, 11],
  [1, 4, 12],
  [2, 1, 6],
  [3, 0, 12],
  [8, 2, 9],
  [9, 1, 9],
  [10, 0, 5],
  [11, 0, 9],
  [12, 0, 4],
  [13, 0, 5],
  [14, 0, 5],
  [15, 0, 5],
  [16, 0, 5],
  [17, 0, 1],
  [18, 0, 3],
  [19, 0, 6],
  [20, 0, 5],
  [21, 0, 2],
  [22, 0, 5],
  [24, 0, 3],
  [25, 0, 4],
  [26, 0, 4],
  [28, 0, 4],
  [29, 0, 3],
  [30, 0, 3],
  [31, 0, 3],
  [32, 0, 2],
  [33, 0, 2],
  [35, 0, 1],
  [36, 0, 2],
  [37, 0, 3],
  [42, 0, 2],
  [44, 0, 1],
  [47, 0, 0],
  [60, 0, 0],
];

let t: TestBroker;

beforeAll(async () => {
  t = await startTestBroker({ requestBytesMax: 64 * 1024, connectionsMax: 8 });
});

afterAll(async () => {
  await t.stop();
});

async function apiVersionsWorks(): Promise<void> {
  const client = await RawClient.connect(t.port);
  try {
    const body = new Reader(await client.request(18, 0, Buffer.alloc(0)));
    expect(body.int16()).toBe(0);
  } finally {
    client.close();
  }
}

function metadataV1(topics: string[] | null): Buffer {
  return new Writer().nullableArray(topics, (w, name) => w.string(name)).toBuffer();
}

function produceV7(topic: string, partition: number, acks: number, batch: Buffer): Buffer {
  const w = new Writer().nullableString(null).int16(acks).int32(5000);
  w.array([topic], (tw, name) => {
    tw.string(name).array([partition], (pw, index) => pw.int32(index).bytes(batch));
  });
  return w.toBuffer();
}

function fetchV11(topic: string, partition: number, offset: number, maxWaitMs: number): Buffer {
  const w = new Writer()
    .int32(-1)
    .int32(maxWaitMs)
    .int32(1)
    .int32(1024 * 1024)
    .int8(0)
    .int32(0)
    .int32(-1);
  w.array([topic], (tw, name) => {
    tw.string(name).array([partition], (pw, index) =>
      pw
        .int32(index)
        .int32(-1)
        .int64(offset)
        .int64(-1)
        .int32(1024 * 1024),
    );
  });
  w.array([], () => {}).string('');
  return w.toBuffer();
}

describe('ApiVersions', () => {
  it('v0-v2 list exactly the advertised ranges, sorted by key', async () => {
    const client = await RawClient.connect(t.port);
    for (const version of [0, 1, 2]) {
      const r = new Reader(await client.request(18, version, Buffer.alloc(0), version + 1));
      expect(r.int16()).toBe(0);
      expect(r.array((e) => [e.int16(), e.int16(), e.int16()])).toEqual(ADVERTISED);
      if (version >= 1) expect(r.int32()).toBe(0);
      expect(r.remaining).toBe(0);
    }
    client.close();
  });

  it('v3 takes a flexible request header and answers with a v0 response header and a compact body', async () => {
    const client = await RawClient.connect(t.port);
    const body = new Writer().compactString('concordat-test').compactString('1.0.0').emptyTaggedFields().toBuffer();
    client.send(18, 3, 77, body, true);
    const r = new Reader(await client.readFrame());
    expect(r.int32()).toBe(77); // response header v0: no tagged fields after the correlation ID
    expect(r.int16()).toBe(0);
    expect(r.compactArray((e) => [e.int16(), e.int16(), e.int16(), e.taggedFields().size])).toEqual(ADVERTISED.map((entry) => [...entry, 0]));
    expect(r.int32()).toBe(0);
    expect(r.taggedFields().size).toBe(0);
    expect(r.remaining).toBe(0);
    client.close();
  });

  it('v3 with an invalid client software name answers INVALID_REQUEST', async () => {
    const client = await RawClient.connect(t.port);
    const body = new Writer().compactString('bad name!').compactString('1').emptyTaggedFields().toBuffer();
    client.send(18, 3, 5, body, true);
    const r = new Reader(await client.readFrame());
    expect([r.int32(), r.int16()]).toEqual([5, 42]);
    client.close();
  });

  it('an unknown higher version gets a v0 body with UNSUPPORTED_VERSION and the full list (KIP-511)', async () => {
    const client = await RawClient.connect(t.port);
    // A v4 request from the future: the body is not even read.
    client.send(18, 4, 9, Buffer.from([0xde, 0xad]), true);
    const r = new Reader(await client.readFrame());
    expect(r.int32()).toBe(9);
    expect(r.int16()).toBe(35);
    expect(r.array((e) => [e.int16(), e.int16(), e.int16()])).toEqual(ADVERTISED);
    expect(r.remaining).toBe(0);
    // The connection stays usable for the retry.
    const retry = new Reader(await client.request(18, 2, Buffer.alloc(0), 10));
    expect(retry.int16()).toBe(0);
    client.close();
  });
});

describe('bad frames close only their own connection', () => {
  const cases: [string, (client: RawClient) => void][] = [
    ['a frame over requestBytesMax (only its size prefix is read)', (c) => c.write(Buffer.from([0x00, 0x01, 0x00, 0x01]))],
    ['a negative frame size', (c) => c.write(Buffer.from([0xff, 0xff, 0xff, 0xf0]))],
    ['a frame shorter than a request header', (c) => c.sendFrame(Buffer.from([0, 18, 0]))],
    ['an API key nobody serves', (c) => c.send(0x7fff, 0, 1, Buffer.alloc(0))],
    ['a version outside the served range', (c) => c.send(3, 7, 1, metadataV1(null))],
    ['a Metadata request whose array claims more topics than the frame holds', (c) => c.send(3, 1, 1, Buffer.from([0, 0, 0, 5, 0, 1]))],
    ['a client ID that is not UTF-8', (c) => c.sendFrame(Buffer.from([0, 18, 0, 0, 0, 0, 0, 1, 0, 2, 0xc3, 0x28]))],
    ['random bytes', (c) => c.sendFrame(Buffer.from('7fff00ffdeadbeefcafebabe0102030405060708', 'hex'))],
  ];

  for (const [name, send] of cases) {
    it(name, async () => {
      const bystander = await RawClient.connect(t.port);
      const offender = await RawClient.connect(t.port);
      send(offender);
      await offender.waitClosed();
      expect(bystander.isClosed).toBe(false);
      expect(new Reader(await bystander.request(18, 1, Buffer.alloc(0))).int16()).toBe(0);
      bystander.close();
      await apiVersionsWorks();
    });
  }

  it('a frame split across many small writes is reassembled', async () => {
    const client = await RawClient.connect(t.port);
    const header = new Writer().int16(18).int16(2).int32(42).nullableString('slow-client').toBuffer();
    const framed = Buffer.concat([new Writer().int32(header.length).toBuffer(), header]);
    for (const byte of framed) {
      client.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const r = new Reader(await client.readFrame());
    expect([r.int32(), r.int16()]).toEqual([42, 0]);
    client.close();
  });
});

describe('responses', () => {
  it('leave in request order even when an earlier request waits (Fetch long poll, then Metadata)', async () => {
    const topic = uniqueName('order');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    const started = Date.now();
    client.send(1, 11, 1, fetchV11(topic, 0, 0, 600));
    client.send(3, 1, 2, metadataV1([topic]));
    const first = await client.readFrame();
    const second = await client.readFrame();
    expect(first.readInt32BE(0)).toBe(1);
    expect(second.readInt32BE(0)).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    client.close();
  });

  it('acks = 0 gets no response, and the records are stored', async () => {
    const topic = uniqueName('acks0');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    const batch = encodeRecordBatch([{ key: null, value: Buffer.from('fire and forget') }]);
    client.send(0, 7, 1, produceV7(topic, 0, 0, batch));
    client.send(18, 0, 2, Buffer.alloc(0));
    expect((await client.readFrame()).readInt32BE(0)).toBe(2);
    expect(t.broker.logManager.describePartition(topic, 0).highWatermark).toBe(1);
    client.close();
  });

  it('a batch with a bad CRC is refused with CORRUPT_MESSAGE, nothing is stored, the connection stays open', async () => {
    const topic = uniqueName('crc');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    const batch = encodeRecordBatch([{ key: null, value: Buffer.from('payload') }]);
    batch.writeUInt8(batch.readUInt8(batch.length - 1) ^ 0xff, batch.length - 1);
    const r = new Reader(await client.request(0, 7, produceV7(topic, 0, -1, batch)));
    r.int32(); // one topic
    expect(r.string()).toBe(topic);
    r.int32(); // one partition
    expect([r.int32(), r.int16(), r.int64(), r.int64(), r.int64()]).toEqual([0, 2, -1, -1, -1]);
    expect(t.broker.logManager.describePartition(topic, 0).highWatermark).toBe(0);
    expect(new Reader(await client.request(18, 0, Buffer.alloc(0), 2)).int16()).toBe(0);
    client.close();
  });

  it('Produce answers with the offsets assigned and Fetch serves the bytes back', async () => {
    const topic = uniqueName('roundtrip');
    await t.broker.logManager.createTopic(topic, { partitions: 2 });
    const client = await RawClient.connect(t.port);
    const sent: Buffer[] = [];
    for (let i = 0; i < 3; i += 1) {
      const batch = encodeRecordBatch([
        { key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) },
        { key: null, value: null },
      ]);
      sent.push(Buffer.from(batch));
      const r = new Reader(await client.request(0, 7, produceV7(topic, 1, -1, batch), 10 + i));
      r.int32();
      r.string();
      r.int32();
      expect([r.int32(), r.int16(), r.int64(), r.int64(), r.int64()]).toEqual([1, 0, i * 2, -1, 0]);
    }
    const r = new Reader(await client.request(1, 11, fetchV11(topic, 1, 2, 0), 20));
    expect([r.int32(), r.int16(), r.int32()]).toEqual([0, 0, 0]); // throttle, error, session
    r.int32();
    expect(r.string()).toBe(topic);
    r.int32();
    expect([r.int32(), r.int16(), r.int64(), r.int64(), r.int64(), r.int32(), r.int32()]).toEqual([1, 0, 6, 6, 0, 0, -1]);
    const records = r.nullableBytes()!;
    // The stored batches are the client's bytes with baseOffset rewritten.
    const expected = Buffer.concat(
      sent.slice(1).map((b, i) => {
        const copy = Buffer.from(b);
        copy.writeBigInt64BE(BigInt((i + 1) * 2), 0);
        return copy;
      }),
    );
    expect(records.equals(expected)).toBe(true);
    client.close();
  });
});

describe('old and odd requests', () => {
  it('Produce v2 is answered in its own format; a magic-1 message set is refused with UNSUPPORTED_FOR_MESSAGE_FORMAT', async () => {
    const topic = uniqueName('v2');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    // A Kafka 0.10 message: offset, size, crc, magic 1, attributes, timestamp, key -1, value of 64 bytes.
    const message = new Writer().int8(1).int8(0).int64(Date.now()).int32(-1).bytes(Buffer.alloc(64, 0x61)).toBuffer();
    const messageSet = new Writer()
      .int64(0)
      .int32(4 + message.length)
      .uint32(0)
      .raw(message)
      .toBuffer();
    const v2 = new Writer()
      .int16(-1)
      .int32(5000)
      .array([topic], (w, name) => w.string(name).array([0], (pw) => pw.int32(0).bytes(messageSet)));
    const r = new Reader(await client.request(0, 2, v2.toBuffer()));
    r.int32();
    expect(r.string()).toBe(topic);
    r.int32();
    // v2: index, error, base_offset, log_append_time; then throttle_time_ms.
    expect([r.int32(), r.int16(), r.int64(), r.int64(), r.int32(), r.remaining]).toEqual([0, 43, -1, -1, 0, 0]);
    expect(t.broker.logManager.describePartition(topic, 0).highWatermark).toBe(0);
    // v0 of the same: no transactional_id in the request, nothing after base_offset in the response.
    const v0 = new Reader(await client.request(0, 0, v2.toBuffer(), 2));
    v0.int32();
    v0.string();
    v0.int32();
    expect([v0.int32(), v0.int16(), v0.int64(), v0.remaining]).toEqual([0, 43, -1, 0]);
    client.close();
  });

  it('Produce with acks 2 is refused with INVALID_REQUIRED_ACKS and stores nothing', async () => {
    const topic = uniqueName('acks2');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    const batch = encodeRecordBatch([{ key: null, value: Buffer.from('x') }]);
    const r = new Reader(await client.request(0, 7, produceV7(topic, 0, 2, batch)));
    r.int32();
    r.string();
    r.int32();
    expect([r.int32(), r.int16()]).toEqual([0, 21]);
    expect(t.broker.logManager.describePartition(topic, 0).highWatermark).toBe(0);
    client.close();
  });

  it('Metadata for an unknown topic answers UNKNOWN_TOPIC_OR_PARTITION and creates nothing without autoCreateTopics', async () => {
    const topic = uniqueName('unknown');
    const client = await RawClient.connect(t.port);
    const r = new Reader(await client.request(3, 1, metadataV1([topic, 'bad name!'])));
    r.array((b) => [b.int32(), b.string(), b.int32(), b.nullableString()]);
    expect(r.int32()).toBe(1); // controller_id
    expect(r.array((x) => [x.int16(), x.string(), x.boolean(), x.array((p) => p.int16())])).toEqual([
      [3, topic, false, []],
      [17, 'bad name!', false, []],
    ]);
    expect(t.broker.logManager.hasTopic(topic)).toBe(false);
    client.close();
  });

  it('with autoCreateTopics, Metadata v4 creates a topic only when the request allows it', async () => {
    const auto = await startTestBroker({ autoCreateTopics: true, defaultPartitions: 3 });
    try {
      const client = await RawClient.connect(auto.port);
      const ask = async (topic: string, allow: boolean) => {
        const body = new Writer()
          .nullableArray([topic], (w, name) => w.string(name))
          .boolean(allow)
          .toBuffer();
        const r = new Reader(await client.request(3, 4, body));
        r.int32();
        r.array((b) => [b.int32(), b.string(), b.int32(), b.nullableString()]);
        r.nullableString();
        r.int32();
        return r.array((x) => [
          x.int16(),
          x.string(),
          x.boolean(),
          x.array((p) => [p.int16(), p.int32(), p.int32(), p.array((n) => n.int32()), p.array((n) => n.int32())]),
        ]);
      };
      const denied = uniqueName('denied');
      expect(await ask(denied, false)).toEqual([[3, denied, false, []]]);
      expect(auto.broker.logManager.hasTopic(denied)).toBe(false);
      const created = uniqueName('created');
      expect(await ask(created, true)).toEqual([
        [
          0,
          created,
          false,
          [
            [0, 0, 1, [1], [1]],
            [0, 1, 1, [1], [1]],
            [0, 2, 1, [1], [1]],
          ],
        ],
      ]);
      expect(auto.broker.logManager.describeTopic(created).partitions).toHaveLength(3);
      client.close();
    } finally {
      await auto.stop();
    }
  });

  it('DeleteTopics of an unknown topic answers UNKNOWN_TOPIC_OR_PARTITION for it alone', async () => {
    const topic = uniqueName('doomed');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    const body = new Writer()
      .array([topic, 'never-was'], (w, name) => w.string(name))
      .int32(1000)
      .toBuffer();
    const r = new Reader(await client.request(20, 1, body));
    expect(r.int32()).toBe(0);
    expect(r.array((x) => [x.string(), x.int16()])).toEqual([
      [topic, 0],
      ['never-was', 3],
    ]);
    expect(t.broker.logManager.hasTopic(topic)).toBe(false);
    client.close();
  });

  it('FindCoordinator: this broker for groups and transactional IDs; an unknown key_type is INVALID_REQUEST', async () => {
    const client = await RawClient.connect(t.port);
    const r = new Reader(await client.request(10, 1, new Writer().string('tx-1').int8(1).toBuffer()));
    expect([r.int32(), r.int16(), r.nullableString(), r.int32(), r.string(), r.int32()]).toEqual([0, 0, null, 1, '127.0.0.1', t.port]);
    const unknown = new Reader(await client.request(10, 1, new Writer().string('x').int8(7).toBuffer(), 2));
    expect([unknown.int32(), unknown.int16(), unknown.nullableString(), unknown.int32()]).toEqual([0, 42, 'unknown key_type 7 (0 group, 1 transaction)', -1]);
    const group = new Reader(await client.request(10, 1, new Writer().string('g').int8(0).toBuffer(), 3));
    expect([group.int32(), group.int16(), group.nullableString(), group.int32(), group.string(), group.int32()]).toEqual([0, 0, null, 1, '127.0.0.1', t.port]);
    client.close();
  });
});

describe('idempotent producers', () => {
  it('a retried batch gets its original offsets and is not written again; gaps and old epochs are refused', async () => {
    const topic = uniqueName('idempotent');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    const init = new Reader(await client.request(22, 1, new Writer().nullableString(null).int32(60_000).toBuffer()));
    expect([init.int32(), init.int16()]).toEqual([0, 0]);
    const producerId = init.int64();
    expect(init.int16()).toBe(0);
    let correlation = 10;
    const produce = async (producerEpoch: number, baseSequence: number, values: string[]) => {
      const batch = encodeRecordBatch(
        values.map((v) => ({ key: null, value: Buffer.from(v) })),
        { producerId, producerEpoch, baseSequence },
      );
      const r = new Reader(await client.request(0, 7, produceV7(topic, 0, -1, batch), (correlation += 1)));
      r.int32();
      r.string();
      r.int32();
      r.int32();
      return [r.int16(), r.int64()];
    };
    expect(await produce(0, 0, ['a', 'b'])).toEqual([0, 0]);
    expect(await produce(0, 0, ['a', 'b'])).toEqual([0, 0]); // the retry: same offsets, nothing written
    expect(await produce(0, 5, ['x'])).toEqual([45, -1]); // OUT_OF_ORDER_SEQUENCE_NUMBER: 2 expected
    expect(await produce(0, 2, ['c'])).toEqual([0, 2]);
    expect(await produce(1, 0, ['d'])).toEqual([0, 3]); // a new epoch starts again at 0
    expect(await produce(0, 3, ['stale'])).toEqual([47, -1]); // INVALID_PRODUCER_EPOCH
    expect(t.broker.logManager.describePartition(topic, 0).highWatermark).toBe(4);
    const { records } = await t.broker.logManager.read(topic, 0, 0, { maxBytes: 1 << 20 });
    expect(decodeRecordBatches(records).flatMap((b) => b.records.map((r) => r.value!.toString()))).toEqual(['a', 'b', 'c', 'd']);
    client.close();
  });
});

describe('long poll', () => {
  it('Fetch returns as soon as records arrive', async () => {
    const topic = uniqueName('poll');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    client.send(1, 11, 1, fetchV11(topic, 0, 0, 5000));
    // The fetch found nothing and waits in the log; the append wakes it, long before its 5 s.
    await until(() => t.broker.logManager.describePartition(topic, 0).readsWaiting === 1, { timeoutMs: 5000, message: 'the fetch waiting' });
    const appended = Date.now();
    await t.broker.logManager.appendRecords(topic, 0, [{ key: null, value: Buffer.from('late') }]);
    const frame = await client.readFrame();
    expect(Date.now() - appended).toBeLessThan(2500);
    expect(frame.includes(Buffer.from('late'))).toBe(true);
    client.close();
  });

  it('Fetch with nothing to return waits max_wait_ms, then answers with no records', async () => {
    const topic = uniqueName('empty');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    const started = Date.now();
    const r = new Reader(
      await client.request(
        1,
        4,
        new Writer()
          .int32(-1)
          .int32(300)
          .int32(1)
          .int32(1024)
          .int8(0)
          .array([topic], (w, name) => w.string(name).array([0], (pw) => pw.int32(0).int64(0).int32(1024)))
          .toBuffer(),
      ),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(r.int32()).toBe(0);
    r.int32();
    r.string();
    r.int32();
    // v4: partition, error, high watermark, last stable offset, aborted transactions, records
    expect([r.int32(), r.int16(), r.int64(), r.int64(), r.int32()]).toEqual([0, 0, 0, 0, 0]);
    expect(r.nullableBytes()?.length).toBe(0);
    client.close();
  });

  it('Fetch past the log end answers OFFSET_OUT_OF_RANGE at once', async () => {
    const topic = uniqueName('oor');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    const started = Date.now();
    const r = new Reader(await client.request(1, 11, fetchV11(topic, 0, 5, 5000)));
    expect(Date.now() - started).toBeLessThan(1000);
    r.int32();
    r.int16();
    r.int32();
    r.int32();
    r.string();
    r.int32();
    expect([r.int32(), r.int16(), r.int64()]).toEqual([0, 1, -1]);
    client.close();
  });
});

describe('connection limits', () => {
  it('closes connections beyond connectionsMax and keeps the others', async () => {
    const limited = await startTestBroker({ connectionsMax: 2 });
    try {
      const a = await RawClient.connect(limited.port);
      const b = await RawClient.connect(limited.port);
      const c = await RawClient.connect(limited.port);
      await c.waitClosed();
      expect(new Reader(await a.request(18, 0, Buffer.alloc(0))).int16()).toBe(0);
      expect(new Reader(await b.request(18, 0, Buffer.alloc(0))).int16()).toBe(0);
      a.close();
      await a.closed;
      // The broker has seen a go before d connects (or d would be the third).
      await until(() => limited.broker.connectionCount === 1, { timeoutMs: 5000, message: 'the broker to drop a' });
      const d = await RawClient.connect(limited.port);
      expect(new Reader(await d.request(18, 0, Buffer.alloc(0))).int16()).toBe(0);
      b.close();
      d.close();
    } finally {
      await limited.stop();
    }
  });

  it('a frame that does not fit the request budget waits until an earlier one is answered', async () => {
    const tight = await startTestBroker({ requestBytesMax: 4096, requestBytesInFlightMax: 4096 });
    try {
      const big = await RawClient.connect(tight.port);
      const small = await RawClient.connect(tight.port);
      // 4090 bytes announced, 12 sent: the broker reserves all 4090 of its 4096 for it.
      const body = Buffer.concat([new Writer().int16(18).int16(0).int32(1).nullableString('big').toBuffer(), Buffer.alloc(4077)]);
      big.write(Buffer.concat([new Writer().int32(body.length).toBuffer(), body.subarray(0, 12)]));
      await until(() => tight.broker.requestBytesInFlight === body.length, { timeoutMs: 10_000, message: 'the big frame reserved' });
      small.send(18, 0, 2, Buffer.alloc(0));
      // The small frame's size prefix arrived and does not fit: it waits, its connection paused, unanswered.
      await until(() => tight.broker.requestsWaiting === 1, { timeoutMs: 10_000, message: 'the small frame waiting for the budget' });
      expect(tight.broker.requestBytesInFlight).toBe(body.length);
      big.write(body.subarray(12));
      expect((await big.readFrame()).readInt32BE(0)).toBe(1);
      expect((await small.readFrame()).readInt32BE(0)).toBe(2);
      expect(tight.broker.connectionCount).toBe(2);
      big.close();
      small.close();
    } finally {
      await tight.stop();
    }
  });

  it('closes a connection idle for connectionIdleMs', async () => {
    const idle = await startTestBroker({ connectionIdleMs: 1000 });
    try {
      const client = await RawClient.connect(idle.port);
      const started = Date.now();
      await client.waitClosed(5000);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    } finally {
      await idle.stop();
    }
  });

  it('a shutdown wakes a long poll and answers it before closing', async () => {
    const closing = await startTestBroker();
    const topic = uniqueName('shutdown');
    await closing.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(closing.port);
    client.send(1, 11, 1, fetchV11(topic, 0, 0, 20_000));
    await until(() => closing.broker.logManager.describePartition(topic, 0).readsWaiting === 1, { timeoutMs: 5000, message: 'the fetch waiting' });
    const started = Date.now();
    await closing.stop();
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await client.readFrame()).readInt32BE(0)).toBe(1);
    await client.waitClosed();
  });
});
