/**
 * Prometheus metrics of the log engine, on prom-client: one set per
 * registry, summed over the logs attached to it (an embedded transport's
 * log, a broker's). Everything but the fdatasync histogram is read from the
 * attached logs on scrape, from what they hold in memory (no file I/O):
 *
 * | metric                                      | type      | labels | meaning                                               |
 * |---------------------------------------------|-----------|--------|-------------------------------------------------------|
 * | `concordat_log_appended_records_total`      | counter   | topic  | records appended since the log opened (duplicates not counted) |
 * | `concordat_log_appended_bytes_total`        | counter   | topic  | RecordBatch bytes appended since the log opened       |
 * | `concordat_log_fsync_duration_seconds`      | histogram |        | duration of each fdatasync (one per group commit)     |
 * | `concordat_log_partitions`                  | gauge     | topic  | partitions of the topic                               |
 * | `concordat_log_segments`                    | gauge     | topic  | segment files (`.log`) of the topic's partitions      |
 * | `concordat_log_size_bytes`                  | gauge     | topic  | bytes of the topic's segment files on disk (indexes excluded) |
 * | `concordat_log_reads_waiting`               | gauge     | topic  | long-poll reads (consumers' fetches) waiting for an append now; at `readWaitersMax` per partition more fetches poll instead |
 *
 * The counters restart from zero when a log is reopened (Prometheus's
 * `rate()` handles that as a counter reset).
 *
 * @module
 */

import { Counter, Gauge, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { LogManager } from './log-manager.js';

interface LogMetricsSet {
  logs: Map<LogManager, { count: number; detach: () => void }>;
  fsyncSeconds: Histogram;
}

const sets = new WeakMap<Registry, LogMetricsSet>();

/** Seconds: fdatasync on SSDs takes 0.1–5 ms, on network or spinning disks 5–50 ms, and a stalled disk seconds. */
export const FSYNC_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/**
 * Adds `logManager` to the metrics of `registry` until the returned function is
 * called (call it before or after closing the log). Attaching one log twice
 * counts it once; each attach needs its own detach.
 */
export function attachLogMetrics(logManager: LogManager, registry: Registry = defaultRegistry): () => void {
  const set = metricsSet(registry);
  const existing = set.logs.get(logManager);
  if (existing !== undefined) {
    existing.count += 1;
  } else {
    const detach = logManager.onSync((seconds) => set.fsyncSeconds.observe(seconds));
    set.logs.set(logManager, { count: 1, detach });
  }
  let attached = true;
  return () => {
    if (!attached) return;
    attached = false;
    const entry = set.logs.get(logManager);
    if (entry === undefined) return;
    entry.count -= 1;
    if (entry.count === 0) {
      entry.detach();
      set.logs.delete(logManager);
    }
  };
}

function metricsSet(registry: Registry): LogMetricsSet {
  const existing = sets.get(registry);
  if (existing !== undefined) return existing;
  const logs = new Map<LogManager, { count: number; detach: () => void }>();
  const appended = (field: 'records' | 'bytes'): Map<string, number> => {
    const sums = new Map<string, number>();
    for (const logManager of logs.keys()) {
      for (const [topic, totals] of logManager.appendTotals()) sums.set(topic, (sums.get(topic) ?? 0) + totals[field]);
    }
    return sums;
  };
  const inventory = (): Map<string, { partitions: number; segments: number; bytes: number; readsWaiting: number }> => {
    const sums = new Map<string, { partitions: number; segments: number; bytes: number; readsWaiting: number }>();
    for (const logManager of logs.keys()) {
      for (const topic of safeTopics(logManager)) {
        const sum = sums.get(topic) ?? { partitions: 0, segments: 0, bytes: 0, readsWaiting: 0 };
        for (const partition of safeDescribe(logManager, topic)) {
          sum.partitions += 1;
          sum.segments += partition.segmentCount;
          sum.bytes += partition.sizeBytes;
          sum.readsWaiting += partition.readsWaiting;
        }
        sums.set(topic, sum);
      }
    }
    return sums;
  };
  const counter = (name: string, help: string, field: 'records' | 'bytes'): void => {
    new Counter({
      name,
      help,
      labelNames: ['topic'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [topic, value] of appended(field)) this.inc({ topic }, value);
      },
    });
  };
  const gauge = (name: string, help: string, field: 'partitions' | 'segments' | 'bytes' | 'readsWaiting'): void => {
    new Gauge({
      name,
      help,
      labelNames: ['topic'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [topic, sums] of inventory()) this.set({ topic }, sums[field]);
      },
    });
  };
  counter('concordat_log_appended_records_total', 'Records appended to the log since it opened (repeated appends not counted)', 'records');
  counter('concordat_log_appended_bytes_total', 'RecordBatch bytes appended to the log since it opened', 'bytes');
  gauge('concordat_log_partitions', 'Partitions of each topic in the log', 'partitions');
  gauge('concordat_log_segments', 'Segment files of each topic in the log', 'segments');
  gauge('concordat_log_size_bytes', 'Bytes of the segment files of each topic on disk', 'bytes');
  gauge('concordat_log_reads_waiting', 'Long-poll reads waiting for an append to each topic now', 'readsWaiting');
  const fsyncSeconds = new Histogram({
    name: 'concordat_log_fsync_duration_seconds',
    help: 'Duration of each fdatasync of a segment (one per group commit)',
    buckets: FSYNC_BUCKETS_SECONDS,
    registers: [registry],
  });
  const set: LogMetricsSet = { logs, fsyncSeconds };
  sets.set(registry, set);
  return set;
}

/** Topics of a log that may have closed meanwhile (a closed log reports none). */
function safeTopics(logManager: LogManager): string[] {
  try {
    return logManager.listTopics();
  } catch {
    return [];
  }
}

/** A topic's partitions, or none when it was deleted between listing and describing. */
function safeDescribe(logManager: LogManager, topic: string): Array<{ segmentCount: number; sizeBytes: number; readsWaiting: number }> {
  try {
    return logManager.describeTopic(topic).partitions;
  } catch {
    return [];
  }
}
