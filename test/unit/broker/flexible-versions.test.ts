import { describe, expect, it } from 'vitest';
import { isFlexible, type AnyApi } from '../../../src/broker/apis/api.js';
import { API_TABLE } from '../../../src/broker/apis/index.js';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';

/**
 * The versions newer than kafkajs's (so kafkajs has no decoder to check them
 * with, see responses.test.ts): each request and response body against a
 * byte layout written out here from Kafka's message specs
 * (clients/src/main/resources/common/message/<Api>{Request,Response}.json):
 * fields in spec order, "versions" deciding presence, flexibleVersions
 * deciding compact encodings (length + 1 as UNSIGNED_VARINT) and a tagged-
 * field section (here empty: one 0 byte) closing every struct. The bytes are
 * built with {@link Bytes}, a writer of its own, not the broker's.
 */

/** A minimal, separate byte builder: big-endian integers, unsigned varints, compact strings. */
class Bytes {
  private readonly parts: number[] = [];

  i8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  i16(v: number): this {
    return this.i8(v >> 8).i8(v);
  }
  i32(v: number): this {
    return this.i16(v >> 16).i16(v);
  }
  i64(v: number): this {
    const big = BigInt.asUintN(64, BigInt(v));
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.i8(Number((big >> shift) & 0xffn));
    return this;
  }
  uvarint(v: number): this {
    let rest = v;
    while (rest >= 0x80) {
      this.i8((rest & 0x7f) | 0x80);
      rest >>>= 7;
    }
    return this.i8(rest);
  }
  raw(bytes: Buffer | number[]): this {
    for (const b of bytes) this.i8(b);
    return this;
  }
  /** STRING (INT16 length). */
  str(s: string): this {
    const b = Buffer.from(s);
    return this.i16(b.length).raw(b);
  }
  /** COMPACT_STRING; null: COMPACT_NULLABLE_STRING's 0. */
  cstr(s: string | null): this {
    if (s === null) return this.uvarint(0);
    const b = Buffer.from(s);
    return this.uvarint(b.length + 1).raw(b);
  }
  /** COMPACT_BYTES. */
  cbytes(b: Buffer): this {
    return this.uvarint(b.length + 1).raw(b);
  }
  /** A COMPACT_ARRAY's count; null: 0. */
  carr(count: number | null): this {
    return this.uvarint(count === null ? 0 : count + 1);
  }
  /** An empty TAG_BUFFER. */
  tags(): this {
    return this.i8(0);
  }
  bool(v: boolean): this {
    return this.i8(v ? 1 : 0);
  }
  get buffer(): Buffer {
    return Buffer.from(this.parts);
  }
}

function api(name: string): AnyApi {
  const found = [...API_TABLE.values()].find((a) => a.name === name);
  if (found === undefined) throw new Error(`no API ${name}`);
  return found;
}

/** Decodes a request body as the connection does (the reader's flexible flag from the API), and checks every byte was read. */
function decode(name: string, version: number, body: Bytes): unknown {
  const a = api(name);
  const reader = new Reader(body.buffer);
  reader.flexible = isFlexible(a, version);
  const request: unknown = a.decode(reader, version);
  expect(reader.remaining).toBe(0);
  return request;
}

/** Encodes a response body as the connection does. */
function encode(name: string, version: number, response: unknown): Buffer {
  const a = api(name);
  const writer = new Writer();
  writer.flexible = isFlexible(a, version);
  a.encode(writer, version, response);
  return writer.toBuffer();
}

const ZERO_UUID = Buffer.alloc(16);
const TOPIC_UUID = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');

describe('flexible versions against the byte layouts of Kafka’s message specs', () => {
  it('every API says where its flexible versions start as the specs do', () => {
    const flexibleFrom = Object.fromEntries([...API_TABLE.values()].map((a) => [a.name, a.flexibleVersion]));
    expect(flexibleFrom).toMatchObject({
      Produce: 9,
      Fetch: 12,
      ListOffsets: 6,
      FindCoordinator: 3,
      JoinGroup: 6,
      Heartbeat: 4,
      LeaveGroup: 4,
      SyncGroup: 4,
      Metadata: 9,
      OffsetCommit: 8,
      OffsetFetch: 6,
      DescribeGroups: 5,
      ListGroups: 3,
      ApiVersions: 3,
      CreateTopics: 5,
      InitProducerId: 2,
      SaslAuthenticate: 2,
      DeleteTopics: 4,
      DeleteGroups: 2,
      DeleteRecords: 2,
      AlterConfigs: 2,
      CreatePartitions: 2,
      AddPartitionsToTxn: 3,
      AddOffsetsToTxn: 3,
      EndTxn: 3,
      TxnOffsetCommit: 3,
      IncrementalAlterConfigs: 1,
      DescribeCluster: 0,
    });
  });

  it('Produce v9: request with compact records; response v9 with record_errors, error_message and tag buffers', () => {
    const records = Buffer.from([1, 2, 3, 4, 5]);
    const body = new Bytes().cstr('txn').i16(-1).i32(30_000).carr(1).cstr('orders').carr(1).i32(2).cbytes(records).tags().tags().tags();
    expect(decode('Produce', 9, body)).toEqual({
      transactionalId: 'txn',
      acks: -1,
      timeoutMs: 30_000,
      topics: [{ name: 'orders', partitions: [{ index: 2, records }] }],
    });

    const response = {
      topics: [
        { name: 'orders', partitions: [{ index: 2, errorCode: 87, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1, errorMessage: 'bad record' }] },
      ],
    };
    const expected = new Bytes()
      .carr(1)
      .cstr('orders')
      .carr(1)
      .i32(2)
      .i16(87)
      .i64(-1)
      .i64(-1)
      .i64(-1)
      .carr(0) // record_errors
      .cstr('bad record') // error_message
      .tags()
      .tags()
      .i32(0) // throttle_time_ms
      .tags();
    expect(encode('Produce', 9, response)).toEqual(expected.buffer);
    expect(encode('Produce', 11, response)).toEqual(expected.buffer);
    // v8: the same fields, classic encodings, no tag buffers.
    const v8 = new Bytes().i32(1).str('orders').i32(1).i32(2).i16(87).i64(-1).i64(-1).i64(-1).i32(0).i16(10).raw(Buffer.from('bad record')).i32(0);
    expect(encode('Produce', 8, response)).toEqual(v8.buffer);
  });

  it('Fetch v12: last_fetched_epoch, forgotten topics, rack and a cluster_id tag in the request; compact records in the response', () => {
    const body = new Bytes()
      .i32(-1) // replica_id
      .i32(500)
      .i32(1)
      .i32(52_428_800)
      .i8(1) // isolation_level
      .i32(0) // session_id
      .i32(-1) // session_epoch
      .carr(1)
      .cstr('orders')
      .carr(1)
      .i32(0) // partition
      .i32(-1) // current_leader_epoch
      .i64(42) // fetch_offset
      .i32(-1) // last_fetched_epoch
      .i64(-1) // log_start_offset
      .i32(1_048_576)
      .tags()
      .tags()
      .carr(1) // forgotten_topics_data
      .cstr('old')
      .carr(1)
      .i32(3)
      .tags()
      .cstr('rack-a')
      .uvarint(1) // one tagged field: cluster_id (tag 0)
      .uvarint(0)
      .uvarint(4)
      .cstr('abc');
    expect(decode('Fetch', 12, body)).toEqual({
      maxWaitMs: 500,
      minBytes: 1,
      maxBytes: 52_428_800,
      isolationLevel: 1,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [{ topic: 'orders', partitions: [{ partition: 0, fetchOffset: 42, partitionMaxBytes: 1_048_576 }] }],
    });

    const records = Buffer.from([9, 8, 7]);
    const response = {
      errorCode: 0,
      topics: [
        {
          topic: 'orders',
          partitions: [
            {
              partition: 0,
              errorCode: 0,
              highWatermark: 50,
              lastStableOffset: 45,
              logStartOffset: 3,
              abortedTransactions: [{ producerId: 7, firstOffset: 43 }],
              records,
            },
          ],
        },
      ],
    };
    const expected = new Bytes()
      .i32(0)
      .i16(0)
      .i32(0) // throttle, error, session_id
      .carr(1)
      .cstr('orders')
      .carr(1)
      .i32(0)
      .i16(0)
      .i64(50)
      .i64(45)
      .i64(3)
      .carr(1)
      .i64(7)
      .i64(43)
      .tags() // aborted_transactions
      .i32(-1) // preferred_read_replica
      .cbytes(records)
      .tags()
      .tags()
      .tags();
    expect(encode('Fetch', 12, response)).toEqual(expected.buffer);
  });

  it('ListOffsets v6: current_leader_epoch in, leader_epoch out, compact', () => {
    const body = new Bytes().i32(-1).i8(0).carr(1).cstr('orders').carr(1).i32(1).i32(-1).i64(-2).tags().tags().tags();
    expect(decode('ListOffsets', 6, body)).toEqual({ readCommitted: false, topics: [{ name: 'orders', partitions: [{ partitionIndex: 1, timestamp: -2 }] }] });
    const response = { topics: [{ name: 'orders', partitions: [{ partitionIndex: 1, errorCode: 0, timestamp: -1, offset: 12 }] }] };
    const expected = new Bytes().i32(0).carr(1).cstr('orders').carr(1).i32(1).i16(0).i64(-1).i64(12).i32(-1).tags().tags().tags();
    expect(encode('ListOffsets', 6, response)).toEqual(expected.buffer);
    // v4 (classic) has the same fields.
    const v4 = new Bytes().i32(0).i32(1).str('orders').i32(1).i32(1).i16(0).i64(-1).i64(12).i32(-1);
    expect(encode('ListOffsets', 4, response)).toEqual(v4.buffer);
  });

  const metadataResponse = {
    nodeId: 1,
    host: 'h',
    port: 9092,
    clusterId: 'c',
    topics: [{ errorCode: 0, name: 't', partitions: 1, authorizedOperations: 0b1101_1111_1000 }],
    clusterAuthorizedOperations: -2147483648,
  };

  it('Metadata v12: topics by ID or name, no cluster operations; response with topic IDs and partition leader epochs', () => {
    const body = new Bytes().carr(2).raw(ZERO_UUID).cstr('t').tags().raw(TOPIC_UUID).cstr(null).tags().bool(false).bool(true).tags();
    expect(decode('Metadata', 12, body)).toEqual({
      topics: ['t', null],
      allowAutoTopicCreation: false,
      includeClusterAuthorizedOperations: false,
      includeTopicAuthorizedOperations: true,
    });
    const expected = new Bytes()
      .i32(0) // throttle
      .carr(1)
      .i32(1)
      .cstr('h')
      .i32(9092)
      .cstr(null)
      .tags() // brokers
      .cstr('c') // cluster_id
      .i32(1) // controller_id
      .carr(1)
      .i16(0)
      .cstr('t')
      .raw(ZERO_UUID)
      .bool(false)
      .carr(1)
      .i16(0)
      .i32(0)
      .i32(1)
      .i32(-1) // leader_epoch
      .carr(1)
      .i32(1) // replicas
      .carr(1)
      .i32(1) // isr
      .carr(0) // offline
      .tags()
      .i32(0b1101_1111_1000)
      .tags()
      .tags();
    expect(encode('Metadata', 12, metadataResponse)).toEqual(expected.buffer);
  });

  it('Metadata v9 and v10: cluster authorized operations after the topics; v10 adds topic IDs', () => {
    const v9 = new Bytes().carr(null).bool(true).bool(true).bool(false).tags();
    expect(decode('Metadata', 9, v9)).toMatchObject({ topics: null, includeClusterAuthorizedOperations: true, includeTopicAuthorizedOperations: false });
    const response = { ...metadataResponse, topics: [], clusterAuthorizedOperations: 0x1fa0 };
    const head = (): Bytes => new Bytes().i32(0).carr(1).i32(1).cstr('h').i32(9092).cstr(null).tags().cstr('c').i32(1).carr(0);
    expect(encode('Metadata', 9, response)).toEqual(head().i32(0x1fa0).tags().buffer);
    expect(encode('Metadata', 10, response)).toEqual(head().i32(0x1fa0).tags().buffer);
    expect(encode('Metadata', 11, response)).toEqual(head().tags().buffer);
  });

  it('Metadata v8 (classic): both include flags, topic operations per topic, cluster operations at the end', () => {
    const body = new Bytes().i32(1).str('t').bool(true).bool(false).bool(true);
    expect(decode('Metadata', 8, body)).toEqual({
      topics: ['t'],
      allowAutoTopicCreation: true,
      includeClusterAuthorizedOperations: false,
      includeTopicAuthorizedOperations: true,
    });
    const expected = new Bytes()
      .i32(0)
      .i32(1)
      .i32(1)
      .str('h')
      .i32(9092)
      .i16(-1)
      .str('c')
      .i32(1)
      .i32(1)
      .i16(0)
      .str('t')
      .bool(false)
      .i32(1)
      .i16(0)
      .i32(0)
      .i32(1)
      .i32(-1)
      .i32(1)
      .i32(1)
      .i32(1)
      .i32(1)
      .i32(0)
      .i32(0b1101_1111_1000)
      .i32(-2147483648);
    expect(encode('Metadata', 8, metadataResponse)).toEqual(expected.buffer);
  });

  it('OffsetCommit v8: group_instance_id and leader epoch, compact', () => {
    const body = new Bytes().cstr('g').i32(3).cstr('m-1').cstr('static-1').carr(1).cstr('orders').carr(1).i32(0).i64(99).i32(4).cstr(null).tags().tags().tags();
    expect(decode('OffsetCommit', 8, body)).toEqual({
      groupId: 'g',
      generationId: 3,
      memberId: 'm-1',
      groupInstanceId: 'static-1',
      topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, committedOffset: 99, committedLeaderEpoch: 4, committedMetadata: null }] }],
    });
    expect(decode('OffsetCommit', 9, body)).toEqual(decode('OffsetCommit', 8, body));
    const response = { topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, errorCode: 0 }] }] };
    expect(encode('OffsetCommit', 8, response)).toEqual(new Bytes().i32(0).carr(1).cstr('orders').carr(1).i32(0).i16(0).tags().tags().tags().buffer);
  });

  const offsets = (groupId: string) => ({
    groupId,
    errorCode: 0,
    topics: [{ name: 'orders', partitions: [{ partitionIndex: 1, committedOffset: 17, committedLeaderEpoch: 2, metadata: 'm', errorCode: 0 }] }],
  });

  it('OffsetFetch v8-v9: several groups, member ID and epoch (v9), require_stable', () => {
    const body = new Bytes()
      .carr(2)
      .cstr('a')
      .cstr('member')
      .i32(5)
      .carr(1)
      .cstr('orders')
      .carr(2)
      .i32(0)
      .i32(1)
      .tags()
      .tags()
      .cstr('b')
      .cstr(null)
      .i32(-1)
      .carr(null)
      .tags()
      .bool(true)
      .tags();
    expect(decode('OffsetFetch', 9, body)).toEqual({
      groups: [
        { groupId: 'a', topics: [{ name: 'orders', partitionIndexes: [0, 1] }] },
        { groupId: 'b', topics: null },
      ],
      requireStable: true,
    });
    const group = (id: string): Bytes => new Bytes().cstr(id).carr(1).cstr('orders').carr(1).i32(1).i64(17).i32(2).cstr('m').i16(0).tags().tags().i16(0).tags();
    const expected = new Bytes().i32(0).carr(2).raw(group('a').buffer).raw(group('b').buffer).tags();
    expect(encode('OffsetFetch', 8, { groups: [offsets('a'), offsets('b')] })).toEqual(expected.buffer);
  });

  it('OffsetFetch v6-v7: one group, compact, require_stable from v7; response with the leader epoch and the group error', () => {
    const v7 = new Bytes().cstr('a').carr(1).cstr('orders').carr(1).i32(1).tags().bool(true).tags();
    expect(decode('OffsetFetch', 7, v7)).toEqual({ groups: [{ groupId: 'a', topics: [{ name: 'orders', partitionIndexes: [1] }] }], requireStable: true });
    const v6 = new Bytes().cstr('a').carr(null).tags();
    expect(decode('OffsetFetch', 6, v6)).toEqual({ groups: [{ groupId: 'a', topics: null }], requireStable: false });
    const expected = new Bytes().i32(0).carr(1).cstr('orders').carr(1).i32(1).i64(17).i32(2).cstr('m').i16(0).tags().tags().i16(0).tags();
    expect(encode('OffsetFetch', 6, { groups: [offsets('a')] })).toEqual(expected.buffer);
    // v5 (classic): the leader epoch after the offset.
    const v5 = new Bytes().i32(0).i32(1).str('orders').i32(1).i32(1).i64(17).i32(2).str('m').i16(0).i16(0);
    expect(encode('OffsetFetch', 5, { groups: [offsets('a')] })).toEqual(v5.buffer);
  });

  const described = {
    groups: [
      {
        errorCode: 0,
        groupId: 'g',
        groupState: 'Stable',
        protocolType: 'consumer',
        protocolData: 'range',
        members: [
          {
            memberId: 'm',
            groupInstanceId: 'i-1',
            clientId: 'c',
            clientHost: '/127.0.0.1',
            memberMetadata: Buffer.from([1]),
            memberAssignment: Buffer.from([2, 3]),
          },
        ],
        authorizedOperations: 0x148,
      },
    ],
  };

  it('DescribeGroups v3-v5: include_authorized_operations, group_instance_id, compact', () => {
    expect(decode('DescribeGroups', 5, new Bytes().carr(1).cstr('g').bool(true).tags())).toEqual({ groups: ['g'], includeAuthorizedOperations: true });
    expect(decode('DescribeGroups', 3, new Bytes().i32(1).str('g').bool(false))).toEqual({ groups: ['g'], includeAuthorizedOperations: false });
    const v5 = new Bytes()
      .i32(0)
      .carr(1)
      .i16(0)
      .cstr('g')
      .cstr('Stable')
      .cstr('consumer')
      .cstr('range')
      .carr(1)
      .cstr('m')
      .cstr('i-1')
      .cstr('c')
      .cstr('/127.0.0.1')
      .cbytes(Buffer.from([1]))
      .cbytes(Buffer.from([2, 3]))
      .tags()
      .i32(0x148)
      .tags()
      .tags();
    expect(encode('DescribeGroups', 5, described)).toEqual(v5.buffer);
    const v3 = new Bytes()
      .i32(0)
      .i32(1)
      .i16(0)
      .str('g')
      .str('Stable')
      .str('consumer')
      .str('range')
      .i32(1)
      .str('m')
      .str('c')
      .str('/127.0.0.1')
      .i32(1)
      .raw([1])
      .i32(2)
      .raw([2, 3])
      .i32(0x148);
    expect(encode('DescribeGroups', 3, described)).toEqual(v3.buffer);
  });

  it('ListGroups v3-v5: filters and the state and type of each group', () => {
    expect(decode('ListGroups', 3, new Bytes().tags())).toEqual({ statesFilter: [], typesFilter: [] });
    expect(decode('ListGroups', 5, new Bytes().carr(1).cstr('Stable').carr(1).cstr('classic').tags())).toEqual({
      statesFilter: ['Stable'],
      typesFilter: ['classic'],
    });
    const response = { errorCode: 0, groups: [{ groupId: 'g', protocolType: 'consumer', groupState: 'Empty', groupType: 'classic' }] };
    expect(encode('ListGroups', 3, response)).toEqual(new Bytes().i32(0).i16(0).carr(1).cstr('g').cstr('consumer').tags().tags().buffer);
    expect(encode('ListGroups', 5, response)).toEqual(
      new Bytes().i32(0).i16(0).carr(1).cstr('g').cstr('consumer').cstr('Empty').cstr('classic').tags().tags().buffer,
    );
  });

  it('InitProducerId v2-v5: producer ID and epoch from v3', () => {
    expect(decode('InitProducerId', 2, new Bytes().cstr(null).i32(60_000).tags())).toEqual({
      transactionalId: null,
      transactionTimeoutMs: 60_000,
      producerId: -1,
      producerEpoch: -1,
    });
    expect(decode('InitProducerId', 4, new Bytes().cstr('tx').i32(60_000).i64(1000).i16(3).tags())).toEqual({
      transactionalId: 'tx',
      transactionTimeoutMs: 60_000,
      producerId: 1000,
      producerEpoch: 3,
    });
    expect(encode('InitProducerId', 3, { errorCode: 0, producerId: 1000, producerEpoch: 4 })).toEqual(new Bytes().i32(0).i16(0).i64(1000).i16(4).tags().buffer);
  });

  it('AddPartitionsToTxn v3, AddOffsetsToTxn v3, EndTxn v3: the v2 fields, compact', () => {
    expect(decode('AddPartitionsToTxn', 3, new Bytes().cstr('tx').i64(5).i16(1).carr(1).cstr('orders').carr(2).i32(0).i32(2).tags().tags())).toEqual({
      transactionalId: 'tx',
      producerId: 5,
      producerEpoch: 1,
      topics: [{ name: 'orders', partitions: [0, 2] }],
    });
    const added = { topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, errorCode: 0 }] }] };
    expect(encode('AddPartitionsToTxn', 3, added)).toEqual(new Bytes().i32(0).carr(1).cstr('orders').carr(1).i32(0).i16(0).tags().tags().tags().buffer);
    expect(decode('AddOffsetsToTxn', 3, new Bytes().cstr('tx').i64(5).i16(1).cstr('g').tags())).toEqual({
      transactionalId: 'tx',
      producerId: 5,
      producerEpoch: 1,
      groupId: 'g',
    });
    expect(encode('AddOffsetsToTxn', 3, { errorCode: 90 })).toEqual(new Bytes().i32(0).i16(90).tags().buffer);
    expect(decode('EndTxn', 3, new Bytes().cstr('tx').i64(5).i16(1).bool(true).tags())).toEqual({
      transactionalId: 'tx',
      producerId: 5,
      producerEpoch: 1,
      committed: true,
    });
    expect(encode('EndTxn', 4, { errorCode: 0 })).toEqual(new Bytes().i32(0).i16(0).tags().buffer);
  });

  it('TxnOffsetCommit v3: generation, member ID and group_instance_id before the topics, compact', () => {
    const body = new Bytes()
      .cstr('tx')
      .cstr('g')
      .i64(5)
      .i16(1)
      .i32(7)
      .cstr('m-1')
      .cstr(null)
      .carr(1)
      .cstr('orders')
      .carr(1)
      .i32(0)
      .i64(10)
      .i32(-1)
      .cstr('')
      .tags()
      .tags()
      .tags();
    expect(decode('TxnOffsetCommit', 3, body)).toEqual({
      transactionalId: 'tx',
      groupId: 'g',
      producerId: 5,
      producerEpoch: 1,
      generationId: 7,
      memberId: 'm-1',
      groupInstanceId: null,
      topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, committedOffset: 10, committedLeaderEpoch: -1, committedMetadata: '' }] }],
    });
    const response = { topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, errorCode: 22 }] }] };
    expect(encode('TxnOffsetCommit', 3, response)).toEqual(new Bytes().i32(0).carr(1).cstr('orders').carr(1).i32(0).i16(22).tags().tags().tags().buffer);
  });

  it('FindCoordinator v3-v5: one key (v3), several keys and a coordinator each (v4+)', () => {
    expect(decode('FindCoordinator', 3, new Bytes().cstr('g').i8(0).tags())).toEqual({ keys: ['g'], keyType: 0 });
    expect(decode('FindCoordinator', 4, new Bytes().i8(1).carr(2).cstr('tx-a').cstr('tx-b').tags())).toEqual({ keys: ['tx-a', 'tx-b'], keyType: 1 });
    const c = (key: string) => ({ key, errorCode: 0, errorMessage: null, nodeId: 1, host: 'h', port: 9092 });
    expect(encode('FindCoordinator', 3, { coordinators: [c('g')] })).toEqual(new Bytes().i32(0).i16(0).cstr(null).i32(1).cstr('h').i32(9092).tags().buffer);
    const v4 = new Bytes().i32(0).carr(2);
    for (const key of ['tx-a', 'tx-b']) v4.cstr(key).i32(1).cstr('h').i32(9092).i16(0).cstr(null).tags();
    expect(encode('FindCoordinator', 5, { coordinators: [c('tx-a'), c('tx-b')] })).toEqual(v4.tags().buffer);
  });

  it('JoinGroup v6-v9: reason (v8) in, protocol type (v7) and skip_assignment (v9) out', () => {
    const request = (version: number): Bytes => {
      const b = new Bytes()
        .cstr('g')
        .i32(45_000)
        .i32(300_000)
        .cstr('')
        .cstr(null)
        .cstr('consumer')
        .carr(1)
        .cstr('range')
        .cbytes(Buffer.from([0, 1]))
        .tags();
      if (version >= 8) b.cstr('rejoin');
      return b.tags();
    };
    const decoded = {
      groupId: 'g',
      sessionTimeoutMs: 45_000,
      rebalanceTimeoutMs: 300_000,
      memberId: '',
      groupInstanceId: null,
      protocolType: 'consumer',
      protocols: [{ name: 'range', metadata: Buffer.from([0, 1]) }],
    };
    expect(decode('JoinGroup', 6, request(6))).toEqual(decoded);
    expect(decode('JoinGroup', 8, request(8))).toEqual(decoded);
    const response = {
      errorCode: 0,
      generationId: 2,
      protocolType: 'consumer',
      protocolName: 'range',
      leader: 'm-1',
      memberId: 'm-1',
      members: [{ memberId: 'm-1', groupInstanceId: null, metadata: Buffer.from([5]) }],
    };
    const members = (b: Bytes): Bytes =>
      b
        .cstr('m-1')
        .carr(1)
        .cstr('m-1')
        .cstr(null)
        .cbytes(Buffer.from([5]))
        .tags()
        .tags();
    expect(encode('JoinGroup', 6, response)).toEqual(members(new Bytes().i32(0).i16(0).i32(2).cstr('range').cstr('m-1')).buffer);
    expect(encode('JoinGroup', 7, response)).toEqual(members(new Bytes().i32(0).i16(0).i32(2).cstr('consumer').cstr('range').cstr('m-1')).buffer);
    expect(encode('JoinGroup', 9, response)).toEqual(members(new Bytes().i32(0).i16(0).i32(2).cstr('consumer').cstr('range').cstr('m-1').bool(false)).buffer);
  });

  it('SyncGroup v4-v5: protocol type and name (v5) both ways, compact assignments', () => {
    const body = new Bytes()
      .cstr('g')
      .i32(2)
      .cstr('m-1')
      .cstr(null)
      .cstr('consumer')
      .cstr('range')
      .carr(1)
      .cstr('m-1')
      .cbytes(Buffer.from([7]))
      .tags()
      .tags();
    expect(decode('SyncGroup', 5, body)).toEqual({
      groupId: 'g',
      generationId: 2,
      memberId: 'm-1',
      groupInstanceId: null,
      protocolType: 'consumer',
      protocolName: 'range',
      assignments: [{ memberId: 'm-1', assignment: Buffer.from([7]) }],
    });
    const response = { errorCode: 0, protocolType: 'consumer', protocolName: 'range', assignment: Buffer.from([7]) };
    expect(encode('SyncGroup', 4, response)).toEqual(
      new Bytes()
        .i32(0)
        .i16(0)
        .cbytes(Buffer.from([7]))
        .tags().buffer,
    );
    expect(encode('SyncGroup', 5, response)).toEqual(
      new Bytes()
        .i32(0)
        .i16(0)
        .cstr('consumer')
        .cstr('range')
        .cbytes(Buffer.from([7]))
        .tags().buffer,
    );
  });

  it('Heartbeat v4 and LeaveGroup v4-v5 (a reason per member from v5)', () => {
    expect(decode('Heartbeat', 4, new Bytes().cstr('g').i32(2).cstr('m-1').cstr('i-1').tags())).toEqual({
      groupId: 'g',
      generationId: 2,
      memberId: 'm-1',
      groupInstanceId: 'i-1',
    });
    expect(encode('Heartbeat', 4, { errorCode: 27 })).toEqual(new Bytes().i32(0).i16(27).tags().buffer);
    const leave = new Bytes().cstr('g').carr(1).cstr('m-1').cstr(null).cstr('shutting down').tags().tags();
    expect(decode('LeaveGroup', 5, leave)).toEqual({ groupId: 'g', members: [{ memberId: 'm-1', groupInstanceId: null }] });
    const left = { errorCode: 0, members: [{ memberId: 'm-1', groupInstanceId: null, errorCode: 0 }] };
    expect(encode('LeaveGroup', 4, left)).toEqual(new Bytes().i32(0).i16(0).carr(1).cstr('m-1').cstr(null).i16(0).tags().tags().buffer);
  });

  it('SaslAuthenticate v2, DeleteGroups v2, DeleteRecords v2, AlterConfigs v2: the v1 fields, compact', () => {
    expect(decode('SaslAuthenticate', 2, new Bytes().cbytes(Buffer.from('n,,n=u,r=x')).tags())).toEqual({ authBytes: Buffer.from('n,,n=u,r=x') });
    expect(encode('SaslAuthenticate', 2, { errorCode: 0, errorMessage: null, authBytes: Buffer.from('r=xy'), sessionLifetimeMs: 0 })).toEqual(
      new Bytes().i16(0).cstr(null).cbytes(Buffer.from('r=xy')).i64(0).tags().buffer,
    );
    expect(decode('DeleteGroups', 2, new Bytes().carr(1).cstr('g').tags())).toEqual({ groupsNames: ['g'] });
    expect(encode('DeleteGroups', 2, { results: [{ groupId: 'g', errorCode: 69 }] })).toEqual(
      new Bytes().i32(0).carr(1).cstr('g').i16(69).tags().tags().buffer,
    );
    expect(decode('DeleteRecords', 2, new Bytes().carr(1).cstr('t').carr(1).i32(0).i64(5).tags().tags().i32(1000).tags())).toEqual({
      topics: [{ name: 't', partitions: [{ partitionIndex: 0, offset: 5 }] }],
      timeoutMs: 1000,
    });
    expect(encode('DeleteRecords', 2, { topics: [{ name: 't', partitions: [{ partitionIndex: 0, lowWatermark: 5, errorCode: 0 }] }] })).toEqual(
      new Bytes().i32(0).carr(1).cstr('t').carr(1).i32(0).i64(5).i16(0).tags().tags().tags().buffer,
    );
    expect(decode('AlterConfigs', 2, new Bytes().carr(1).i8(2).cstr('t').carr(1).cstr('retention.ms').cstr('1000').tags().tags().bool(true).tags())).toEqual({
      resources: [{ resourceType: 2, resourceName: 't', configs: [{ name: 'retention.ms', value: '1000' }] }],
      validateOnly: true,
    });
    expect(encode('AlterConfigs', 2, { responses: [{ errorCode: 40, errorMessage: 'no', resourceType: 2, resourceName: 't' }] })).toEqual(
      new Bytes().i32(0).carr(1).i16(40).cstr('no').i8(2).cstr('t').tags().tags().buffer,
    );
  });

  it('DeleteTopics v4-v5: compact; an error message per topic from v5', () => {
    expect(decode('DeleteTopics', 4, new Bytes().carr(1).cstr('t').i32(1000).tags())).toEqual({ topicNames: ['t'], timeoutMs: 1000 });
    const response = { responses: [{ name: 't', errorCode: 3, errorMessage: 'unknown topic' }] };
    expect(encode('DeleteTopics', 4, response)).toEqual(new Bytes().i32(0).carr(1).cstr('t').i16(3).tags().tags().buffer);
    expect(encode('DeleteTopics', 5, response)).toEqual(new Bytes().i32(0).carr(1).cstr('t').i16(3).cstr('unknown topic').tags().tags().buffer);
  });

  it('CreateTopics v6 is v5 on the wire', () => {
    const response = { topics: [{ name: 't', errorCode: 36, errorMessage: 'exists', created: undefined }] };
    const expected = new Bytes().i32(0).carr(1).cstr('t').i16(36).cstr('exists').i32(-1).i16(-1).carr(null).tags().tags();
    expect(encode('CreateTopics', 5, response)).toEqual(expected.buffer);
    expect(encode('CreateTopics', 6, response)).toEqual(expected.buffer);
  });

  it('CreatePartitions v2-v3: compact, a tag buffer after each assignment', () => {
    const body = new Bytes().carr(1).cstr('t').i32(3).carr(1).carr(1).i32(1).tags().tags().i32(1000).bool(false).tags();
    expect(decode('CreatePartitions', 3, body)).toEqual({ topics: [{ name: 't', count: 3, assignments: [[1]] }], timeoutMs: 1000, validateOnly: false });
    expect(decode('CreatePartitions', 2, new Bytes().carr(1).cstr('t').i32(3).carr(null).tags().i32(1000).bool(true).tags())).toEqual({
      topics: [{ name: 't', count: 3, assignments: null }],
      timeoutMs: 1000,
      validateOnly: true,
    });
    expect(encode('CreatePartitions', 2, { results: [{ name: 't', errorCode: 37, errorMessage: 'no' }] })).toEqual(
      new Bytes().i32(0).carr(1).cstr('t').i16(37).cstr('no').tags().tags().buffer,
    );
  });

  it('a tagged field a client sends is skipped, whatever its tag, and the fields after it are read', () => {
    // ListGroups v4 with an unknown tagged field (tag 7, 3 bytes) after the states filter.
    const body = new Bytes().carr(1).cstr('Empty').uvarint(1).uvarint(7).uvarint(3).raw([1, 2, 3]);
    expect(decode('ListGroups', 4, body)).toEqual({ statesFilter: ['Empty'], typesFilter: [] });
  });
});
