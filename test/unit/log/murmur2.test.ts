import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey, toPositive } from '../../../src/log/partitioner.js';

/**
 * Known answers of Kafka's Java `Utils.murmur2`:
 * - apache/kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2;
 * - kafkajs src/producer/partitioners/default/murmur2.spec.js (kafkajs ≥ 2.0; the table there is
 *   "Generated with src/producer/partitioners/defaultJava/Test.java", i.e. by the Java client).
 */
const KAFKA_UTILS_TEST: ReadonlyArray<[string | number[], number]> = [
  ['21', -973932308],
  ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536],
  ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  [[0x61, 0x62, 0x63], 479470107],
];

const KAFKAJS_JAVA_GENERATED: Readonly<Record<string, number>> = {
  '0': 971027396,
  '1': -1993445489,
  '128': -326012175,
  '2187': -1508407203,
  '16384': -325739742,
  '78125': -1654490814,
  '279936': 1462227128,
  '823543': -2014198330,
  '2097152': 607668903,
  '4782969': -1182699775,
  '10000000': -1830336757,
  '19487171': -1603849305,
  '35831808': -857013643,
  '62748517': -1167431028,
  '105413504': -381294639,
  '170859375': -1658323481,
  '100:48069': 1009543857,
};

describe('murmur2', () => {
  it.each(KAFKA_UTILS_TEST)('matches Kafka UtilsTest for %j', (input, expected) => {
    const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input);
    expect(murmur2(bytes)).toBe(expected);
  });

  it('matches the Java client on every kafkajs known answer', () => {
    for (const [key, expected] of Object.entries(KAFKAJS_JAVA_GENERATED)) {
      expect([key, murmur2(Buffer.from(key, 'utf8'))]).toEqual([key, expected]);
    }
  });

  it('hashes the empty key like Java (seed ^ 0, then the final mix)', () => {
    expect(murmur2(Buffer.alloc(0))).toBe(275646681);
  });
});

describe('partitionForKey', () => {
  it('is toPositive(murmur2(key)) % partitions', () => {
    // murmur2("foobar") = -790332482 → & 0x7fffffff = 1357151166
    expect(toPositive(-790332482)).toBe(1357151166);
    expect(partitionForKey(Buffer.from('foobar'), 7)).toBe(1357151166 % 7);
    expect(partitionForKey(Buffer.from('21'), 3)).toBe((-973932308 & 0x7fffffff) % 3);
  });

  it('maps -2^31 to 0, where Math.abs would stay negative', () => {
    expect(toPositive(-2147483648)).toBe(0);
  });

  it('refuses a partition count below 1', () => {
    expect(() => partitionForKey(Buffer.from('k'), 0)).toThrow('partitions must be ≥ 1, got 0');
  });
});
