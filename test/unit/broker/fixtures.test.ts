import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { requestHeaderVersion } from '../../../src/broker/apis/api.js';
import { API_TABLE } from '../../../src/broker/apis/index.js';
import { readRequestHeader, readRequestHeaderTail } from '../../../src/broker/codec/header.js';
import { DEFAULT_READER_LIMITS, Reader } from '../../../src/broker/codec/reader.js';
import { decodeAssignment, decodeRecordBatches, decodeSubscription } from '../../../src/log/index.js';

/**
 * Request frames captured from real clients (fixtures/capture.ts): kafkajs
 * 2.2.4, kcat 1.7.1 on librdkafka 2.0.2, kafka-python 2.0.2, and
 * confluent-kafka 1.7.0 on librdkafka 2.0.2 (its admin requests). Every frame
 * must decode with exactly its bytes consumed, to the values the capture
 * scenario used.
 */
const here = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const TOPIC = 'fixture-topic';

interface Fixture {
  client: string;
  name: string;
  frame: Buffer;
}

function fixtures(): Fixture[] {
  const out: Fixture[] = [];
  for (const client of readdirSync(here, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)) {
    for (const file of readdirSync(join(here, client)).filter((f) => f.endsWith('.hex'))) {
      out.push({ client, name: file.replace('.hex', ''), frame: Buffer.from(readFileSync(join(here, client, file), 'utf8').trim(), 'hex') });
    }
  }
  return out;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Decoded = any;

function decode(fixture: Fixture): { apiName: string; version: number; clientId: string | null; request: Decoded } {
  const reader = new Reader(fixture.frame, DEFAULT_READER_LIMITS);
  const header = readRequestHeader(reader);
  const api = API_TABLE.get(header.apiKey)!;
  expect(api, `API key ${header.apiKey}`).toBeDefined();
  expect(header.apiVersion).toBeGreaterThanOrEqual(api.minVersion);
  expect(header.apiVersion).toBeLessThanOrEqual(api.maxVersion);
  readRequestHeaderTail(reader, requestHeaderVersion(api, header.apiVersion));
  const request = api.decode(reader, header.apiVersion);
  expect(reader.remaining, `${fixture.client}/${fixture.name}: bytes left after decoding`).toBe(0);
  return { apiName: api.name, version: header.apiVersion, clientId: header.clientId, request };
}

const groupOf = (client: string) => (client === 'kcat' ? 'fixture-group-kcat' : client === 'kafka-python' ? 'fixture-group-python' : 'fixture-group');

/** What each API's captured request must contain, given the capture scenario. */
const EXPECT: Record<string, (request: Decoded, client: string, version: number) => void> = {
  ApiVersions(request, client, version) {
    if (version === 3) expect(request).toEqual({ clientSoftwareName: 'librdkafka', clientSoftwareVersion: '2.0.2' });
    else expect(request).toEqual({ clientSoftwareName: null, clientSoftwareVersion: null });
    expect(client.startsWith('kcat') ? 3 : version).toBe(version);
  },
  Metadata(request) {
    for (const topic of request.topics ?? []) expect([TOPIC, 'fixture-deleted']).toContain(topic);
  },
  Produce(request, client) {
    expect(request.transactionalId).toBeNull();
    expect(request.topics.map((t: Decoded) => t.name)).toEqual([TOPIC]);
    const batches = request.topics[0].partitions.flatMap((p: Decoded) => decodeRecordBatches(p.records));
    const records = batches.flatMap((b: Decoded) => b.records).map((r: Decoded) => [r.key?.toString() ?? null, r.value?.toString() ?? null]);
    if (client === 'kafkajs') {
      expect(request.acks).toBe(-1);
      expect(records.sort()).toEqual(
        [
          ['k1', 'v1'],
          ['k2', 'v2'],
          [null, null],
        ].sort(),
      );
      expect(batches[0].producerId).toBeGreaterThan(0);
      expect(batches.every((b: Decoded) => b.baseSequence === 0)).toBe(true);
      const withHeader = batches.flatMap((b: Decoded) => b.records).find((r: Decoded) => r.headers.length > 0);
      expect(withHeader.headers).toEqual([{ key: 'ce_id', value: Buffer.from('id-1') }]);
    } else if (client === 'kcat') {
      expect(batches[0].compression).toBe('gzip');
      expect(records.sort()).toEqual([
        ['a', '1'.repeat(200)],
        ['b', '2'.repeat(200)],
      ]);
    } else {
      expect(request.acks).toBe(-1);
      expect(records).toEqual([['py', 'thon']]);
    }
  },
  Fetch(request) {
    expect(request.topics.map((t: Decoded) => t.topic)).toEqual([TOPIC]);
    expect(request.maxWaitMs).toBeGreaterThan(0);
    for (const p of request.topics[0].partitions) expect([0, 1]).toContain(p.partition);
  },
  ListOffsets(request, client) {
    expect(request.topics.map((t: Decoded) => t.name)).toEqual([TOPIC]);
    // Each client's first ListOffsets asks for the earliest offset (-2): auto.offset.reset / fromBeginning / -o beginning.
    for (const p of request.topics[0].partitions) expect(p.timestamp).toBe(-2);
    expect(request.topics[0].partitions.length).toBe(client === 'kafkajs' ? 2 : 1);
  },
  FindCoordinator(request, client) {
    expect(request).toEqual({ keys: [groupOf(client)], keyType: 0 });
  },
  JoinGroup(request, client) {
    expect(request.groupId).toBe(groupOf(client));
    expect(request.protocolType).toBe('consumer');
    expect(request.sessionTimeoutMs).toBeGreaterThan(0);
    expect(request.protocols.length).toBeGreaterThan(0);
    for (const protocol of request.protocols) expect(decodeSubscription(protocol.metadata).topics).toEqual([TOPIC]);
  },
  SyncGroup(request, client) {
    expect(request.groupId).toBe(groupOf(client));
    expect(request.generationId).toBeGreaterThanOrEqual(1);
    expect(request.memberId).not.toBe('');
    for (const a of request.assignments) {
      expect(decodeAssignment(a.assignment).assignedPartitions.map((tp) => tp.topic)).toEqual([TOPIC]);
    }
  },
  Heartbeat(request, client) {
    expect(request.groupId).toBe(groupOf(client));
    expect(request.memberId).not.toBe('');
  },
  LeaveGroup(request, client) {
    expect(request.groupId).toBe(groupOf(client));
    expect(request.members).toHaveLength(1);
    expect(request.members[0].memberId).not.toBe('');
  },
  OffsetCommit(request, client) {
    expect(request.groupId).toBe(groupOf(client));
    expect(request.topics.map((t: Decoded) => t.name)).toEqual([TOPIC]);
    for (const p of request.topics[0].partitions) expect(p.committedOffset).toBeGreaterThanOrEqual(0);
  },
  OffsetFetch(request, client) {
    expect(request.groups).toHaveLength(1);
    expect(request.groups[0].groupId).toBe(groupOf(client));
    expect(request.groups[0].topics.map((t: Decoded) => t.name)).toEqual([TOPIC]);
    expect(request.requireStable).toBe(false);
  },
  DescribeGroups(request) {
    expect(request).toEqual({ groups: ['fixture-group'], includeAuthorizedOperations: false });
  },
  ListGroups(request) {
    expect(request).toEqual({ statesFilter: [], typesFilter: [] });
  },
  CreateTopics(request, client) {
    expect(request.validateOnly).toBe(false);
    if (client === 'confluent-kafka') {
      expect(request.topics).toEqual([
        {
          name: 'fixture-configs',
          numPartitions: 1,
          replicationFactor: 1,
          assignments: [],
          configs: [
            { name: 'retention.ms', value: '60000' },
            { name: 'cleanup.policy', value: 'delete' },
          ],
        },
      ]);
      return;
    }
    expect(request.topics.map((t: Decoded) => [t.name, t.numPartitions, t.replicationFactor])).toEqual([
      [TOPIC, 2, -1],
      ['fixture-deleted', 1, -1],
    ]);
  },
  DescribeConfigs(request, client) {
    // librdkafka always asks for synonyms (v1), and for every config when given none.
    expect(request).toEqual(
      client === 'confluent-kafka'
        ? { resources: [{ resourceType: 2, resourceName: 'fixture-configs', configurationKeys: null }], includeSynonyms: true }
        : { resources: [{ resourceType: 2, resourceName: TOPIC, configurationKeys: ['retention.ms', 'cleanup.policy'] }], includeSynonyms: true },
    );
  },
  DeleteTopics(request) {
    expect(request.topicNames).toEqual(['fixture-deleted']);
  },
  InitProducerId(request) {
    expect(request.transactionalId).toBeNull();
  },
  SaslHandshake(request, client) {
    expect(request).toEqual({ mechanism: client === 'kafkajs-sasl' ? 'SCRAM-SHA-256' : 'PLAIN' });
  },
  SaslAuthenticate(request) {
    expect(request.authBytes.toString()).toMatch(/^n,,n=fixture,r=[\x21-\x2b\x2d-\x7e]+$/);
  },
};

describe('request fixtures from real clients', () => {
  const all = fixtures();

  it('cover every client and the APIs each uses', () => {
    const names = (client: string) =>
      all
        .filter((f) => f.client === client)
        .map((f) => f.name)
        .sort();
    expect(names('kafkajs')).toEqual([
      'ApiVersions-v2',
      'CreateTopics-v3',
      'DeleteTopics-v1',
      'DescribeConfigs-v2',
      'DescribeGroups-v2',
      'Fetch-v11',
      'FindCoordinator-v2',
      'InitProducerId-v1',
      'JoinGroup-v5',
      'LeaveGroup-v3',
      'ListGroups-v2',
      'ListOffsets-v3',
      'Metadata-v6',
      'OffsetCommit-v5',
      'OffsetFetch-v4',
      'Produce-v7',
      'SyncGroup-v3',
    ]);
    expect(names('kcat')).toEqual([
      'ApiVersions-v3',
      'Fetch-v11',
      'FindCoordinator-v2',
      'Heartbeat-v3',
      'JoinGroup-v5',
      'LeaveGroup-v1',
      'ListOffsets-v2',
      'Metadata-v4',
      'OffsetCommit-v5',
      'OffsetFetch-v4',
      'Produce-v7',
      'SyncGroup-v3',
    ]);
    expect(names('kafka-python')).toEqual([
      'ApiVersions-v0',
      'Fetch-v4',
      'FindCoordinator-v0',
      'Heartbeat-v1',
      'JoinGroup-v2',
      'LeaveGroup-v1',
      'ListOffsets-v1',
      'Metadata-v0',
      'Metadata-v1',
      'OffsetCommit-v2',
      'OffsetFetch-v1',
      'Produce-v7',
      'SyncGroup-v1',
    ]);
    expect(names('confluent-kafka')).toEqual(['CreateTopics-v3', 'DescribeConfigs-v1']);
  });

  for (const fixture of all.filter((f) => f.name !== 'SaslRawToken-v0')) {
    it(`${fixture.client}/${fixture.name} decodes to the scenario's values`, () => {
      const { apiName, version, clientId, request } = decode(fixture);
      expect(`${apiName}-v${version}`).toBe(fixture.name);
      expect(clientId).not.toBeNull();
      EXPECT[apiName]!(request, fixture.client, version);
    });
  }

  it('kafka-python sends its PLAIN token bare after SaslHandshake v0', () => {
    const token = all.find((f) => f.client === 'kafka-python-sasl' && f.name === 'SaslRawToken-v0')!;
    expect(token.frame.toString()).toBe('fixture\0fixture\0fixture-secret');
  });
});
