import { join } from 'node:path';
import type { LogManager } from '../../src/log/index.js';
import { atomicRewrite, openBenchLog, perSecond, type Row } from './support.js';

export interface OffsetsOptions {
  dir: string;
  runMs: number;
}

/**
 * Offset commits one at a time (a consumer at a low message rate commits
 * after each record): the committed-offsets log (one appended record and
 * one fdatasync) against phase A's per-group checkpoint (write a temp file,
 * fsync, rename, fsync the directory) of the same one-partition body,
 * alternating commit by commit.
 */
export async function benchOffsetCommits(options: OffsetsOptions): Promise<Row> {
  const logManager = await openBenchLog(join(options.dir, 'offsets-log'));
  await logManager.createTopic('t', { partitions: 1 });
  const body = Buffer.from(JSON.stringify({ groupId: 'g', offsets: [['t', 0, 123456, -1, '', Date.now()]] }));
  let rawMs = 0;
  let logMs = 0;
  let commits = 0;
  try {
    while (rawMs < options.runMs) {
      let start = performance.now();
      await atomicRewrite(join(options.dir, 'group.offsets'), body);
      rawMs += performance.now() - start;
      start = performance.now();
      await commit(logManager, commits);
      logMs += performance.now() - start;
      commits += 1;
    }
  } finally {
    await logManager.close();
  }
  return {
    name: 'offset commits, one at a time',
    baseline: `atomic checkpoint rewrite (phase A): ${perSecond(commits / (rawMs / 1000), 'commits')}`,
    measured: `offsets log: ${perSecond(commits / (logMs / 1000), 'commits')}`,
    ratio: rawMs / logMs,
    target: '(no target)',
    pass: null,
  };
}

function commit(logManager: LogManager, offset: number) {
  return logManager.groups.commitOffsets({ groupId: 'g', generationId: -1, memberId: '', topics: [{ topic: 't', partitions: [{ partition: 0, offset }] }] });
}
