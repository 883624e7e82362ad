import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEBIAN_PYTHON, fileNeedsTools, startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';
import { runOk } from './helpers/process.js';

/**
 * kafka-python 2.0.2 (Debian's python3-kafka) against `concordat broker`. It
 * sends ApiVersions v0 and picks the versions of an Apache Kafka release
 * it recognises from what is advertised; these tests show it recognises
 * ours well enough to produce and to run a consumer group.
 */
let t: TestBroker;
const toolsPresent = fileNeedsTools('kafka-python');

beforeAll(async () => {
  if (!toolsPresent) return;
  t = await startTestBroker();
});

afterAll(async () => {
  await t?.stop();
});

const python = (script: string) => runOk(DEBIAN_PYTHON, ['-c', script], { timeoutMs: 60_000 });

describe('kafka-python', () => {
  it('produces with acks=all and gets the offsets back', async () => {
    const topic = uniqueName('py');
    await t.broker.logManager.createTopic(topic, { partitions: 2 });
    const out = await python(`
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers='${t.bootstrap}', acks='all', linger_ms=0)
for i in range(6):
    m = p.send('${topic}', key=b'k%d' % i, value=b'v%d' % i, partition=i % 2).get(timeout=10)
    print(m.partition, m.offset)
p.close()
`);
    expect(out.trim().split('\n')).toEqual(['0 0', '1 0', '0 1', '1 1', '0 2', '1 2']);
    const { records } = await t.broker.logManager.read(topic, 1, 0, { maxBytes: 1 << 20 });
    expect(records.includes(Buffer.from('v5'))).toBe(true);
  });

  it('a group of two consumers reads every record and commits every offset', async () => {
    const topic = uniqueName('py-group');
    const group = uniqueName('py-group');
    await t.broker.logManager.createTopic(topic, { partitions: 4 });
    for (let p = 0; p < 4; p += 1) {
      await t.broker.logManager.appendRecords(
        topic,
        p,
        Array.from({ length: 10 }, (_, i) => ({ key: null, value: Buffer.from(`${p}-${i}`) })),
      );
    }
    const consumer = `
from kafka import KafkaConsumer
c = KafkaConsumer('${topic}', bootstrap_servers='${t.bootstrap}', group_id='${group}', auto_offset_reset='earliest',
                  enable_auto_commit=False, consumer_timeout_ms=4000, session_timeout_ms=6000, heartbeat_interval_ms=500)
for m in c:
    print(m.partition, m.offset, m.value.decode(), flush=True)
    c.commit()
c.close()
`;
    const [a, b] = await Promise.all([python(consumer), python(consumer)]);
    const lines = `${a}${b}`.trim().split('\n').filter(Boolean);
    const values = lines.map((l) => l.split(' ')[2]!).sort();
    const expected = Array.from({ length: 4 }, (_, p) => Array.from({ length: 10 }, (_, i) => `${p}-${i}`))
      .flat()
      .sort();
    // A record may be read twice only if a rebalance moved its partition between reading and
    // committing it: at most one record per partition.
    expect([...new Set(values)]).toEqual(expected);
    expect(values.length - expected.length).toBeLessThanOrEqual(4);
    const committed = await t.broker.logManager.groups.fetchOffsets({ groupId: group, topics: [{ topic, partitions: [0, 1, 2, 3] }] });
    expect(committed.topics[0]!.partitions.map((p) => p.offset)).toEqual([10, 10, 10, 10]);
    const described = t.broker.logManager.groups.describeGroup(group);
    expect([described.state, described.members.length, described.protocolType]).toEqual(['Empty', 0, 'consumer']);
  });
});
