import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeRecordBatches, encodeRecordBatch, LogManager, type DecodedBatch } from '../../../src/log/index.js';
import { tempDir } from './helpers.js';
import { simulatePowerLoss } from './power-loss.js';

const WRITER = fileURLToPath(new URL('./power-loss-writer.ts', import.meta.url));
/** 4 by default (each is a child process and a reopen); `npm run test:log:power-loss-long` runs more. */
const CYCLES = Number(process.env.CONCORDAT_POWER_LOSS_CYCLES ?? 4);

interface Ack {
  partition: number;
  baseOffset: number;
  lastOffset: number;
  tag: string;
}

interface Run {
  acks: Ack[];
  /** Highest acknowledged committed offset per partition of `crash`, group `g`. */
  commits: Map<number, number>;
  producerId: number;
}

/**
 * Runs the writer until it dies. By cycle, mod 3: it kills itself right
 * after a random acknowledgement; the test SIGKILLs it a random time after
 * it is ready (inside a write, a sync, a roll, a checkpoint, a compaction
 * of the offsets log, or before anything); it kills itself right after a
 * random file write, before that write's sync.
 */
function runWriterAndKill(dataDir: string, journalDir: string, cycle: number): Promise<Run> {
  const selfKill = cycle % 3 === 0 ? 20 + Math.floor(Math.random() * 400) : 0;
  const killAfterWrites = cycle % 3 === 2 ? 50 + Math.floor(Math.random() * 1000) : 0;
  const msAfterReady = Math.floor(Math.random() * 500);
  return new Promise((resolve, reject) => {
    const args = [WRITER, dataDir, journalDir, String(cycle), String(selfKill), String(killAfterWrites)];
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CONCORDAT_LOG_LEVEL: 'error' },
    });
    const run: Run = { acks: [], commits: new Map(), producerId: -1 };
    let buffered = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const [kind, a, b, c, d] = line.split(' ');
        if (kind === 'PRODUCER') run.producerId = Number(a);
        if (kind === 'READY' && cycle % 3 === 1) setTimeout(() => child.kill('SIGKILL'), msAfterReady);
        if (kind === 'ACK') run.acks.push({ partition: Number(a), baseOffset: Number(b), lastOffset: Number(c), tag: d! });
        if (kind === 'COMMIT') run.commits.set(Number(a), Math.max(run.commits.get(Number(a)) ?? -1, Number(b)));
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(run);
      else reject(new Error(`writer exited with ${code ?? signal} before the kill: ${stderr}`));
    });
  });
}

describe('a power loss at random moments (unsynced writes and directory entries dropped, all or some)', () => {
  it(`loses no acknowledged record or offset commit, and reopens cleanly (${CYCLES} cycles)`, { timeout: 600_000 }, async () => {
    const root = await tempDir('concordat-power-loss-');
    const dataDir = join(root, 'data');
    const journalDir = join(root, 'journal');
    const acked: Ack[] = [];
    const commits = new Map<number, number>();
    let lostWrites = 0;
    let lostEntries = 0;
    let tornWrites = 0;
    let retriesChecked = 0;
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const run = await runWriterAndKill(dataDir, journalDir, cycle);
      acked.push(...run.acks);
      for (const [partition, offset] of run.commits) commits.set(partition, Math.max(commits.get(partition) ?? -1, offset));
      // Even cycles: nothing unsynced survives; odd ones: a random part of it does, the last write possibly torn.
      const lost = simulatePowerLoss(journalDir, { unsynced: cycle % 2 === 0 ? 'none' : 'some' });
      lostWrites += lost.lostWrites;
      lostEntries += lost.lostEntries;
      tornWrites += lost.tornWrites;
      const logManager = await LogManager.open({ dataDir });
      try {
        const { values, batches } = await stored(logManager);
        const missing: string[] = [];
        for (const ack of acked) {
          for (let i = 0; i <= ack.lastOffset - ack.baseOffset; i++) {
            const value = values[ack.partition]!.get(ack.baseOffset + i);
            if (value !== `${ack.tag}/${i}`)
              missing.push(`cycle ${cycle}: partition ${ack.partition} offset ${ack.baseOffset + i}: ${value} instead of ${ack.tag}/${i}`);
          }
        }
        expect(missing.slice(0, 20)).toEqual([]);
        const fetched = await logManager.groups.fetchOffsets({ groupId: 'g', topics: [{ topic: 'crash', partitions: [0, 1, 2] }] });
        for (const { partition, offset } of fetched.topics[0]!.partitions) {
          expect(offset, `cycle ${cycle}: committed offset of partition ${partition}`).toBeGreaterThanOrEqual(commits.get(partition) ?? -1);
        }
        if (await retryLastIdempotentBatch(logManager, batches, run.producerId, cycle)) retriesChecked += 1;
      } finally {
        await logManager.close();
      }
    }
    expect(acked.length).toBeGreaterThan(CYCLES * 5);
    expect(commits.size).toBe(3);
    expect(lostWrites).toBeGreaterThan(0);
    console.log(
      `acknowledged appends: ${acked.length}; unsynced writes dropped: ${lostWrites}; directory entries undone: ${lostEntries}; writes torn: ${tornWrites}; idempotent retries checked: ${retriesChecked}`,
    );
  });
});

/**
 * The producer state survived (snapshot + replay): its last stored batch,
 * sent again, is answered as a duplicate with its original offsets, and
 * the next sequence is taken. False when the producer stored nothing.
 */
async function retryLastIdempotentBatch(logManager: LogManager, batches: DecodedBatch[], producerId: number, cycle: number): Promise<boolean> {
  const last = batches.filter((b) => b.producerId === producerId).at(-1);
  if (last === undefined) return false;
  const records = last.records.map((r) => ({ key: r.key, value: r.value, timestampMs: r.timestampMs }));
  const again = encodeRecordBatch(records, { compression: last.compression, producerId, producerEpoch: last.producerEpoch, baseSequence: last.baseSequence });
  const highWatermark = logManager.describePartition('crash', 2).highWatermark;
  expect(await logManager.append('crash', 2, again)).toMatchObject({ baseOffset: last.baseOffset, lastOffset: last.lastOffset, duplicate: true });
  const nextSequence = last.baseSequence + last.records.length;
  const next = encodeRecordBatch([{ key: null, value: Buffer.from(`retry-${cycle}`) }], {
    producerId,
    producerEpoch: last.producerEpoch,
    baseSequence: nextSequence,
  });
  expect(await logManager.append('crash', 2, next)).toMatchObject({ baseOffset: highWatermark, lastOffset: highWatermark });
  return true;
}

/** Per partition: offset → value (trimmed of padding), asserting contiguity from 0 and no value twice; and partition 2's batches. */
async function stored(logManager: LogManager): Promise<{ values: Map<number, string>[]; batches: DecodedBatch[] }> {
  const values: Map<number, string>[] = [];
  const batches: DecodedBatch[] = [];
  const problems: string[] = [];
  for (let partition = 0; partition < 3; partition++) {
    const byOffset = new Map<number, string>();
    const seen = new Set<string>();
    let offset = 0;
    const end = logManager.describePartition('crash', partition).highWatermark;
    while (offset < end) {
      const read = await logManager.read('crash', partition, offset, { maxBytes: 1 << 20 });
      for (const batch of decodeRecordBatches(read.records)) {
        if (partition === 2) batches.push({ ...batch, records: batch.records.map((r) => ({ ...r, value: Buffer.from(r.value!) })) });
        for (const record of batch.records) {
          if (record.offset !== offset) problems.push(`partition ${partition}: offset ${record.offset} where ${offset} was due`);
          const value = record.value!.toString('latin1', 0, 40).replace(/\.+$/, '');
          if (seen.has(value)) problems.push(`partition ${partition}: ${value} twice`);
          seen.add(value);
          byOffset.set(record.offset, value);
          offset = record.offset + 1;
        }
      }
    }
    values.push(byOffset);
  }
  expect(problems).toEqual([]);
  return { values, batches };
}
