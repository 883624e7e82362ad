import { spawn } from 'node:child_process';
import { appendFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LogManager } from '../../../src/log/index.js';
import { readRecoveryPoints, type RecoveryPoint } from '../../../src/log/recovery-point.js';
import { readAll, tempDir } from './helpers.js';

/**
 * Start-up tells what it did: after a writer was SIGKILLed (and a torn
 * write left at one partition's tail), open logs at info that the shutdown
 * was unclean, what it validated from which recovery point, what it
 * truncated and how long it took; after a clean close it says so.
 */
const WRITER = fileURLToPath(new URL('./crash-writer.ts', import.meta.url));
const ACKS_BEFORE_KILL = 150;
const TORN_BYTES = 37;

type Line = Record<string, unknown> & { msg: string; level: number };

function capturingLogger(): { logger: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
  return { logger, lines };
}

/** Runs crash-writer.ts until it acknowledged ACKS_BEFORE_KILL appends, then SIGKILLs it; resolves with its PID. */
function writeAndKill(dataDir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dataDir, '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CONCORDAT_LOG_LEVEL: 'error' },
    });
    let acks = 0;
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      acks += chunk
        .toString()
        .split('\n')
        .filter((line) => line.startsWith('ACK ')).length;
      if (acks >= ACKS_BEFORE_KILL) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(child.pid!);
      else reject(new Error(`writer exited with ${code ?? signal} before the kill: ${stderr}`));
    });
  });
}

/** Sizes of a partition's `.log` files, by base offset, ascending. */
async function segmentSizes(dir: string): Promise<[number, number][]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.log')).sort();
  return Promise.all(names.map(async (name) => [Number(name.slice(0, 20)), (await stat(join(dir, name))).size] as [number, number]));
}

/** What open must report for a partition, from the files and the recovery point as they were before it. */
function expectedRecovery(sizes: [number, number][], point: RecoveryPoint | undefined): { segmentsValidated: number; bytesValidated: number } {
  let segmentsValidated = 0;
  let bytesValidated = 0;
  for (const [base, size] of sizes) {
    const past = point === undefined || base > point.segmentBase ? size : base === point.segmentBase ? size - point.position : 0;
    if (past > 0) {
      segmentsValidated += 1;
      bytesValidated += past;
    }
  }
  return { segmentsValidated, bytesValidated };
}

describe('start-up log after an unclean shutdown', () => {
  it('says the shutdown was unclean, what it validated from which recovery point, what it truncated, and how long it took', { timeout: 60_000 }, async () => {
    const dataDir = await tempDir('concordat-recovery-log-');
    const writerPid = await writeAndKill(dataDir);
    const points = await readRecoveryPoints(dataDir);
    const before = new Map<number, [number, number][]>();
    for (let p = 0; p < 3; p++) before.set(p, await segmentSizes(join(dataDir, `crash-${p}`)));
    // A torn write at partition 0's tail: bytes that are no batch.
    const p0 = before.get(0)!;
    const [activeBase, activeSize] = p0[p0.length - 1]!;
    await appendFile(join(dataDir, 'crash-0', `${String(activeBase).padStart(20, '0')}.log`), Buffer.alloc(TORN_BYTES, 0x5a));
    p0[p0.length - 1] = [activeBase, activeSize + TORN_BYTES];

    const { logger, lines } = capturingLogger();
    const logManager = await LogManager.open({ dataDir }, { logger });
    try {
      const info = lines.filter((line) => line.level === 30);
      const summary = info.find((line) => line.msg.startsWith('unclean shutdown'));
      expect(summary, JSON.stringify(info)).toBeDefined();
      expect(summary!.previousOwnerPid).toBe(writerPid);

      let segments = 0;
      let bytes = 0;
      let truncated = 0;
      let partitionsValidated = 0;
      for (let p = 0; p < 3; p++) {
        const point = points.get(`crash\u0000${p}`);
        const expected = expectedRecovery(before.get(p)!, point);
        const line = info.find((l) => l.topic === 'crash' && l.partition === p);
        if (expected.bytesValidated === 0) {
          expect(line).toBeUndefined();
          continue;
        }
        partitionsValidated += 1;
        const after = await segmentSizes(join(dataDir, `crash-${p}`));
        const cut = before.get(p)!.at(-1)![1] - after.at(-1)![1];
        const logEndOffset = logManager.describePartition('crash', p).logEndOffset;
        expect(line).toMatchObject({
          recoveryPoint: point === undefined ? null : { segmentBase: point.segmentBase, position: point.position, offset: point.nextOffset },
          ...expected,
          truncatedBytes: cut,
          logEndOffset,
        });
        const from =
          point === undefined
            ? 'the first segment (no recovery point)'
            : `recovery point offset ${point.nextOffset} (${String(point.segmentBase).padStart(20, '0')}.log byte ${point.position})`;
        const s = expected.segmentsValidated === 1 ? '' : 's';
        expect(line!.msg).toBe(
          `topic 'crash' partition ${p}: validated ${expected.segmentsValidated} segment${s} (${expected.bytesValidated} bytes) from ${from}, ` +
            `${cut > 0 ? `truncated ${cut} bytes` : 'truncated nothing'}; log end offset ${logEndOffset}`,
        );
        segments += expected.segmentsValidated;
        bytes += expected.bytesValidated;
        truncated += cut;
      }
      expect(partitionsValidated).toBeGreaterThanOrEqual(1);
      expect(truncated).toBeGreaterThanOrEqual(TORN_BYTES);
      expect(summary).toMatchObject({ partitions: 3, partitionsValidated, segmentsValidated: segments, bytesValidated: bytes, truncatedBytes: truncated });
      const durationMs = summary!.durationMs as number;
      expect(durationMs).toBeGreaterThanOrEqual(0);
      expect(summary!.msg).toMatch(
        new RegExp(
          `^unclean shutdown of process ${writerPid}: validated ${segments} segments? \\(${bytes} bytes\\) past the recovery points of ${partitionsValidated} partitions?, truncated ${truncated} bytes in \\d+ partitions?, \\d+ repairs; recovery took ${durationMs} ms$`,
        ),
      );
      expect(info.find((line) => line.msg === 'log opened')).toMatchObject({ cleanShutdown: false, durationMs });
      // The torn bytes are gone and every batch before them is readable.
      expect((await readAll(logManager, 'crash', 0)).length).toBe(logManager.describePartition('crash', 0).highWatermark);
    } finally {
      await logManager.close();
    }

    const clean = capturingLogger();
    const reopened = await LogManager.open({ dataDir }, { logger: clean.logger });
    await reopened.close();
    expect(clean.lines.filter((line) => line.msg.startsWith('unclean shutdown') || line.partition !== undefined)).toEqual([]);
    expect(clean.lines.find((line) => line.msg === 'log opened')).toMatchObject({ cleanShutdown: true });
  });
});
