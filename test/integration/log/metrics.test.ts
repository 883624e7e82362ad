import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { attachLogMetrics, encodeRecordBatch } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { metricTypes, parseMetrics, sampleValue } from '../../support/prometheus.js';
import { openLog, tempDir } from './helpers.js';

/** The log's metrics read from a real log on disk through prom-client's text output. */
describe('log metrics', () => {
  it('count records and bytes appended, time every fdatasync, and give partitions, segments and bytes on disk per topic', async () => {
    const logManager = await openLog(await tempDir());
    const registry = new Registry();
    const detach = attachLogMetrics(logManager, registry);
    await logManager.createTopic('metrics.a', { partitions: 3, config: { segmentBytes: 1024 } });
    await logManager.createTopic('metrics.b', { partitions: 1 });
    const value = Buffer.alloc(300, 7);
    const batch = encodeRecordBatch([
      { key: null, value },
      { key: null, value },
    ]);
    for (let i = 0; i < 5; i++) await logManager.append('metrics.a', 0, Buffer.from(batch));
    await logManager.appendRecords('metrics.b', 0, [{ key: null, value: Buffer.from('x') }]);

    const text = await registry.metrics();
    const samples = parseMetrics(text);
    const types = metricTypes(text);
    expect(types.get('concordat_log_appended_records_total')).toBe('counter');
    expect(types.get('concordat_log_fsync_duration_seconds')).toBe('histogram');
    expect(sampleValue(samples, 'concordat_log_appended_records_total', { topic: 'metrics.a' })).toBe(10);
    expect(sampleValue(samples, 'concordat_log_appended_records_total', { topic: 'metrics.b' })).toBe(1);
    expect(sampleValue(samples, 'concordat_log_appended_bytes_total', { topic: 'metrics.a' })).toBe(5 * batch.length);
    expect(sampleValue(samples, 'concordat_log_partitions', { topic: 'metrics.a' })).toBe(3);
    expect(sampleValue(samples, 'concordat_log_partitions', { topic: 'metrics.b' })).toBe(1);
    // 1024-byte segments holding one ~650-byte batch each: partition 0 rolled to 5 segments, the two others have one each.
    const description = logManager.describeTopic('metrics.a');
    expect(description.partitions[0]!.segmentCount).toBe(5);
    expect(sampleValue(samples, 'concordat_log_segments', { topic: 'metrics.a' })).toBe(7);
    expect(sampleValue(samples, 'concordat_log_size_bytes', { topic: 'metrics.a' })).toBe(5 * batch.length);
    // Every durable append waited for an fdatasync; each took a positive, plausible time.
    const syncs = sampleValue(samples, 'concordat_log_fsync_duration_seconds_count');
    expect(syncs).toBe(logManager.flushStats().syncs);
    expect(syncs).toBeGreaterThanOrEqual(6);
    const seconds = sampleValue(samples, 'concordat_log_fsync_duration_seconds_sum');
    expect(seconds).toBeGreaterThan(0);
    expect(seconds / syncs).toBeLessThan(5);
    expect(sampleValue(samples, 'concordat_log_fsync_duration_seconds_bucket', { le: '+Inf' })).toBe(syncs);

    detach();
    await logManager.append('metrics.a', 1, Buffer.from(batch));
    const after = parseMetrics(await registry.metrics());
    expect(after.filter((s) => s.name === 'concordat_log_appended_records_total')).toEqual([]);
    expect(sampleValue(after, 'concordat_log_fsync_duration_seconds_count')).toBe(syncs);
  });

  it('give the long-poll reads waiting for an append per topic', async () => {
    const logManager = await openLog(await tempDir());
    const registry = new Registry();
    const detach = attachLogMetrics(logManager, registry);
    await logManager.createTopic('metrics.poll', { partitions: 2 });
    const waitingNow = async (): Promise<number> =>
      sampleValue(parseMetrics(await registry.metrics()), 'concordat_log_reads_waiting', { topic: 'metrics.poll' });
    expect(await waitingNow()).toBe(0);
    const reads = [0, 1].map((partition) => logManager.read('metrics.poll', partition, 0, { maxBytes: 1000, maxWaitMs: 10_000 }));
    await until(() => [0, 1].every((partition) => logManager.describePartition('metrics.poll', partition).readsWaiting === 1), {
      timeoutMs: 5000,
      message: 'both reads waiting',
    });
    expect(await waitingNow()).toBe(2);
    await logManager.appendRecords('metrics.poll', 1, [{ key: null, value: Buffer.from('wake') }]);
    await reads[1];
    expect(await waitingNow()).toBe(1);
    await logManager.appendRecords('metrics.poll', 0, [{ key: null, value: Buffer.from('wake') }]);
    await reads[0];
    expect(await waitingNow()).toBe(0);
    detach();
  });

  it('count a log attached twice to one registry once, and an idempotent repeat not at all', async () => {
    const logManager = await openLog(await tempDir());
    const registry = new Registry();
    const first = attachLogMetrics(logManager, registry);
    const second = attachLogMetrics(logManager, registry);
    await logManager.createTopic('metrics.dup', { partitions: 1 });
    const batch = encodeRecordBatch([{ key: null, value: Buffer.from('a') }], { producerId: 7, producerEpoch: 0, baseSequence: 0 });
    await logManager.append('metrics.dup', 0, Buffer.from(batch));
    const repeat = await logManager.append('metrics.dup', 0, Buffer.from(batch));
    expect(repeat.duplicate).toBe(true);
    const samples = parseMetrics(await registry.metrics());
    expect(sampleValue(samples, 'concordat_log_appended_records_total', { topic: 'metrics.dup' })).toBe(1);
    expect(sampleValue(samples, 'concordat_log_fsync_duration_seconds_count')).toBe(logManager.flushStats().syncs);
    second();
    first();
  });
});
