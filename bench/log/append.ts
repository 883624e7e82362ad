import { join } from 'node:path';
import { encodeRecordBatch, type LogManager } from '../../src/log/index.js';
import { openBenchLog, perSecond, RawFile, type Row } from './support.js';

export interface AppendBenchOptions {
  dir: string;
  /** Total time of each side (baseline and log), in ms. */
  runMs: number;
  /**
   * The two sides alternate in slices of this many ms, so that both see
   * the same disk: a virtual disk's sync latency drifts by 2-3× within
   * seconds, which would swamp a comparison of two separate runs.
   */
  sliceMs: number;
}

const RECORD_BYTES = 1024;

/** A batch of `count` 1 KiB records, encoded once (the bytes a producer sends). */
function encodedBatch(count: number): Buffer {
  const records = Array.from({ length: count }, (_, i) => ({ key: null, value: Buffer.alloc(RECORD_BYTES, i & 0xff) }));
  return encodeRecordBatch(records, { timestampMs: Date.now() });
}

interface Tally {
  ops: number;
  ms: number;
}

/** Alternates `baseline` and `measured` slices until each ran `runMs`; each slice returns how many operations it did. */
async function alternate(options: AppendBenchOptions, baseline: (untilMs: number) => Promise<number>, measured: (untilMs: number) => Promise<number>) {
  const base: Tally = { ops: 0, ms: 0 };
  const ours: Tally = { ops: 0, ms: 0 };
  const slices: number[] = [];
  while (base.ms < options.runMs) {
    let start = performance.now();
    const baseOps = await baseline(start + options.sliceMs);
    const baseMs = performance.now() - start;
    start = performance.now();
    const ourOps = await measured(start + options.sliceMs);
    const ourMs = performance.now() - start;
    base.ops += baseOps;
    base.ms += baseMs;
    ours.ops += ourOps;
    ours.ms += ourMs;
    slices.push(ourOps / ourMs / (baseOps / baseMs));
  }
  const baseRate = base.ops / (base.ms / 1000);
  const ourRate = ours.ops / (ours.ms / 1000);
  slices.sort((a, b) => a - b);
  const spread = `slice ratios ${slices[0]!.toFixed(2)}–${slices[slices.length - 1]!.toFixed(2)}`;
  return { baseRate, ourRate, ratio: ourRate / baseRate, spread };
}

/**
 * 1. Durable appends of 100 × 1 KiB batches, one at a time, against a raw
 * loop writing the same bytes to one file with fdatasync after each batch.
 * The log appends encoded batches (what a Produce request carries); each
 * append is acknowledged after its own fdatasync (nothing to share). The
 * two alternate operation by operation, so that both meet the same disk
 * (on a shared virtual disk, sync latency swings 2-5× within a second).
 */
export async function benchBatchAppend(options: AppendBenchOptions): Promise<Row> {
  const batch = encodedBatch(100);
  const logManager = await openBenchLog(join(options.dir, 'append-log'));
  await logManager.createTopic('append', { partitions: 1 });
  const raw = await RawFile.create(join(options.dir, 'append-raw'));
  let rawMs = 0;
  let logMs = 0;
  let ops = 0;
  try {
    while (rawMs < options.runMs) {
      let start = performance.now();
      await raw.append(batch);
      await raw.datasync();
      rawMs += performance.now() - start;
      start = performance.now();
      // The log rewrites baseOffset in place; one append at a time, so each may reuse the buffer of the last.
      await logManager.append('append', 0, batch);
      logMs += performance.now() - start;
      ops += 1;
    }
  } finally {
    await raw.close();
    await logManager.close();
  }
  const ratio = rawMs / logMs;
  return {
    name: 'durable append, batches of 100 × 1 KiB, one at a time',
    baseline: `write + fdatasync per batch: ${perSecond(ops / (rawMs / 1000), 'batches')}`,
    measured: `${perSecond(ops / (logMs / 1000), 'batches')} (${ops} of each, alternating)`,
    ratio,
    target: '≥ 0.8×',
    pass: ratio >= 0.8,
  };
}

/**
 * 2. Group commit: 64 concurrent appenders, each appending one 1 KiB record
 * and waiting for its acknowledgement before the next, against one
 * fdatasync per record (a loop writing one record batch and syncing).
 */
export async function benchGroupCommit(options: AppendBenchOptions): Promise<Row> {
  const record = encodedBatch(1);
  const logManager = await openBenchLog(join(options.dir, 'group-log'));
  await logManager.createTopic('group', { partitions: 1 });
  const raw = await RawFile.create(join(options.dir, 'group-raw'));
  const before = logManager.flushStats();
  let appended = 0;
  try {
    const result = await alternate(
      options,
      async (until) => {
        let ops = 0;
        for (; performance.now() < until; ops++) {
          await raw.append(record);
          await raw.datasync();
        }
        return ops;
      },
      async (until) => {
        const done = await lanes(logManager, record, until);
        appended += done;
        return done;
      },
    );
    const perSync = appended / (logManager.flushStats().syncs - before.syncs);
    return {
      name: 'group commit: 64 concurrent single-record (1 KiB) appenders',
      baseline: `one fdatasync per record: ${perSecond(result.baseRate, 'records')}`,
      measured: `${perSecond(result.ourRate, 'records')}, ${perSync.toFixed(0)} records per fdatasync (${result.spread})`,
      ratio: result.ratio,
      target: '≥ 20×',
      pass: result.ratio >= 20,
    };
  } finally {
    await raw.close();
    await logManager.close();
  }
}

/** 64 closed-loop appenders of `record` until `until`; returns how many appends were acknowledged. */
async function lanes(logManager: LogManager, record: Buffer, until: number): Promise<number> {
  let appended = 0;
  const lane = async (): Promise<void> => {
    // The log rewrites baseOffset in place: a buffer per lane, reused once its append is acknowledged.
    const own = Buffer.from(record);
    while (performance.now() < until) {
      await logManager.append('group', 0, own);
      appended += 1;
    }
  };
  await Promise.all(Array.from({ length: 64 }, lane));
  return appended;
}
