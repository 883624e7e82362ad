import { describe, expect, it } from 'vitest';
import { compileLogManagerOptions, compileTopicConfig, TOPIC_CONFIG_DEFAULTS } from '../../../src/config/index.js';
import { validateTopicName } from '../../../src/log/topic-name.js';

describe('log options', () => {
  it('fills every default', () => {
    const compiled = compileLogManagerOptions({ dataDir: '/tmp/x' });
    expect(compiled).toEqual({
      dataDir: '/tmp/x',
      topicDefaults: TOPIC_CONFIG_DEFAULTS,
      partitionsPerTopicMax: 1000,
      topicsMax: 10_000,
      appendQueueBytesMax: 64 * 1024 * 1024,
      readBytesMax: 50 * 1024 * 1024,
      readWaitMsMax: 600_000,
      readWaitersMax: 10_000,
      decompressedBatchBytesMax: 256 * 1024 * 1024,
      openFilesMax: 4096,
      indexCacheBytesMax: 64 * 1024 * 1024,
      recoveryCheckpointIntervalMs: 60_000,
      retentionCheckIntervalMs: 300_000,
      producerIdExpirationMs: 86_400_000,
      producersPerPartitionMax: 10_000,
      cleanerOffsetMapBytes: 32 * 1024 * 1024,
      cleanerBackoffMs: 15_000,
      groups: {
        minSessionTimeoutMs: 6000,
        maxSessionTimeoutMs: 1_800_000,
        initialRebalanceDelayMs: 0,
        groupMaxSize: 1000,
        groupsMax: 10_000,
        offsetMetadataMaxBytes: 4096,
        offsetsRetentionMs: 604_800_000,
        offsetsLogBytesMax: 16 * 1024 * 1024,
      },
      transactions: {
        transactionMaxTimeoutMs: 900_000,
        abortTimedOutTransactionsIntervalMs: 10_000,
        transactionalIdExpirationMs: 604_800_000,
        transactionalIdsMax: 10_000,
      },
    });
    expect(TOPIC_CONFIG_DEFAULTS).toEqual({
      segmentBytes: 1024 ** 3,
      segmentMs: 604_800_000,
      segmentIndexBytes: 10 * 1024 * 1024,
      indexIntervalBytes: 4096,
      maxMessageBytes: 1_048_588,
      flushMode: 'sync',
      flushIntervalMs: 1000,
      retentionMs: 604_800_000,
      retentionBytes: -1,
      dedupWindowMs: 0,
      dedupWindowIdsMax: 100_000,
      compression: 'producer',
      cleanupPolicy: 'delete',
      deleteRetentionMs: 86_400_000,
      minCleanableDirtyRatio: 0.5,
      minCompactionLagMs: 0,
    });
  });

  it('names the bad option, what it must be and what it was', () => {
    expect(() => compileLogManagerOptions({ dataDir: '/tmp/x', topicDefaults: { segmentBytes: 10 } })).toThrow(
      'invalid options: log.topicDefaults.segmentBytes: Too small: expected number to be >=1024 (got 10)',
    );
    expect(() => compileLogManagerOptions({ dataDir: '/tmp/x', groups: { minSessionTimeoutMs: 10, maxSessionTimeoutMs: 5 } })).toThrow(
      'invalid options: log.groups: minSessionTimeoutMs must not exceed maxSessionTimeoutMs',
    );
    expect(() => compileLogManagerOptions({ dataDir: '/tmp/x', openFilesMax: 2 })).toThrow(
      'invalid options: log.openFilesMax: Too small: expected number to be >=8 (got 2)',
    );
    expect(() => compileLogManagerOptions({ dataDir: '/tmp/x', topicDefaults: { retentionMs: -2, dedupWindowMs: 8 * 86_400_000 } })).toThrow(
      'invalid options: log.topicDefaults.retentionMs: Too small: expected number to be >=-1 (got -2); ' +
        'log.topicDefaults.dedupWindowMs: Too big: expected number to be <=604800000 (got 691200000)',
    );
  });

  it('merges a topic’s overrides over the defaults', () => {
    expect(compileTopicConfig({ segmentBytes: 4096 }, TOPIC_CONFIG_DEFAULTS)).toEqual({ ...TOPIC_CONFIG_DEFAULTS, segmentBytes: 4096 });
    expect(() => compileTopicConfig({ flushMode: 'never' as never }, TOPIC_CONFIG_DEFAULTS)).toThrow(
      /^invalid options: topic\.flushMode: Invalid option: expected one of "sync"\|"interval"\|"os" \(got "never"\)$/,
    );
  });
});

describe('topic names (Kafka Topic.validate)', () => {
  it.each([
    ['', "Topic name is illegal, it can't be empty"],
    ['.', 'Topic name cannot be "." or ".."'],
    ['..', 'Topic name cannot be "." or ".."'],
    ['a'.repeat(250), `Topic name is illegal, it can't be longer than 249 characters, topic name: ${'a'.repeat(250)}`],
    ['orders/eu', `Topic name "orders/eu" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`],
    ['ordérs', `Topic name "ordérs" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`],
  ])('refuses %j', (name, message) => {
    expect(() => validateTopicName(name)).toThrow(message);
  });

  it('accepts the legal alphabet up to 249 characters', () => {
    expect(() => validateTopicName('Orders.v2_eu-1')).not.toThrow();
    expect(() => validateTopicName('a'.repeat(249))).not.toThrow();
  });
});
