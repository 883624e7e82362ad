import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { decodeAssignment, decodeSubscription, encodeAssignment, encodeSubscription } from '../../../src/log/groups/consumer-protocol.js';
import { RangeAssignor, RoundRobinAssignor } from '../../../src/log/groups/assignors/index.js';

const require = createRequire(import.meta.url);
const { MemberMetadata, MemberAssignment } = require('kafkajs/src/consumer/assignerProtocol.js');

function member(memberId: string, topics: string[]) {
  return { memberId, subscription: decodeSubscription(encodeSubscription({ topics })) };
}

describe('ConsumerProtocol bytes', () => {
  it('encodes a v0 subscription byte for byte', () => {
    expect([...encodeSubscription({ topics: ['ab'], userData: null })]).toEqual([0, 0, 0, 0, 0, 1, 0, 2, 0x61, 0x62, 0xff, 0xff, 0xff, 0xff]);
  });

  it('reads kafkajs member metadata and writes metadata kafkajs reads', () => {
    const theirs = MemberMetadata.encode({ version: 1, topics: ['orders', 'payments'], userData: Buffer.from('u') });
    expect(decodeSubscription(theirs)).toMatchObject({ version: 1, topics: ['orders', 'payments'], userData: Buffer.from('u'), ownedPartitions: [] });
    expect(MemberMetadata.decode(encodeSubscription({ topics: ['x'], userData: Buffer.from('d') }))).toEqual({
      version: 0,
      topics: ['x'],
      userData: Buffer.from('d'),
    });
  });

  it('reads kafkajs assignments and writes assignments kafkajs reads', () => {
    const theirs = MemberAssignment.encode({ version: 0, assignment: { orders: [0, 2], payments: [1] } });
    expect(decodeAssignment(theirs).assignedPartitions).toEqual([
      { topic: 'orders', partitions: [0, 2] },
      { topic: 'payments', partitions: [1] },
    ]);
    const ours = encodeAssignment({ assignedPartitions: [{ topic: 'orders', partitions: [3, 4] }] });
    expect(MemberAssignment.decode(ours)).toEqual({ version: 0, assignment: { orders: [3, 4] }, userData: null });
  });

  it('decodes the empty assignment the coordinator gives a member the leader left out', () => {
    expect(decodeAssignment(Buffer.alloc(0))).toEqual({ version: 0, assignedPartitions: [], userData: null });
  });

  it('reads a v1 subscription with owned partitions', () => {
    const v1 = Buffer.concat([
      encodeSubscription({ topics: ['t'], userData: null, version: 1 }).subarray(0, -4),
      Buffer.from([0, 0, 0, 1, 0, 1, 0x74, 0, 0, 0, 1, 0, 0, 0, 7]),
    ]);
    expect(decodeSubscription(v1).ownedPartitions).toEqual([{ topic: 't', partitions: [7] }]);
  });

  it('reports truncated bytes', () => {
    expect(() => decodeSubscription(Buffer.from([0, 0, 0, 0, 0, 5]))).toThrow('malformed consumer protocol subscription: array count 5 with 0 bytes left');
  });
});

describe('RangeAssignor (Kafka semantics)', () => {
  it('gives each member a contiguous range per topic, the first ones one extra', () => {
    const plan = new RangeAssignor().assign([member('c2', ['t']), member('c1', ['t']), member('c3', ['t'])], new Map([['t', 7]]));
    expect(Object.fromEntries(plan)).toEqual({
      c1: [{ topic: 't', partitions: [0, 1, 2] }],
      c2: [{ topic: 't', partitions: [3, 4] }],
      c3: [{ topic: 't', partitions: [5, 6] }],
    });
  });

  it('assigns per topic among that topic’s subscribers, and skips unknown topics', () => {
    const plan = new RangeAssignor().assign(
      [member('a', ['t1', 't2', 'gone']), member('b', ['t1'])],
      new Map([
        ['t1', 3],
        ['t2', 2],
      ]),
    );
    expect(Object.fromEntries(plan)).toEqual({
      a: [
        { topic: 't1', partitions: [0, 1] },
        { topic: 't2', partitions: [0, 1] },
      ],
      b: [{ topic: 't1', partitions: [2] }],
    });
  });

  it('leaves members beyond the partition count empty', () => {
    const plan = new RangeAssignor().assign([member('a', ['t']), member('b', ['t']), member('c', ['t'])], new Map([['t', 2]]));
    expect(plan.get('c')).toEqual([]);
  });
});

describe('RoundRobinAssignor (Kafka semantics)', () => {
  it('deals all partitions sorted by topic in turn over members sorted by ID', () => {
    const plan = new RoundRobinAssignor().assign(
      [member('m2', ['t0', 't1']), member('m1', ['t0', 't1'])],
      new Map([
        ['t1', 2],
        ['t0', 3],
      ]),
    );
    expect(Object.fromEntries(plan)).toEqual({
      m1: [
        { topic: 't0', partitions: [0, 2] },
        { topic: 't1', partitions: [1] },
      ],
      m2: [
        { topic: 't0', partitions: [1] },
        { topic: 't1', partitions: [0] },
      ],
    });
  });

  it('skips members not subscribed to a topic', () => {
    const plan = new RoundRobinAssignor().assign(
      [member('a', ['x']), member('b', ['x', 'y'])],
      new Map([
        ['x', 2],
        ['y', 2],
      ]),
    );
    expect(Object.fromEntries(plan)).toEqual({
      a: [{ topic: 'x', partitions: [0] }],
      b: [
        { topic: 'x', partitions: [1] },
        { topic: 'y', partitions: [0, 1] },
      ],
    });
  });
});
