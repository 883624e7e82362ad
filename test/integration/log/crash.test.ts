import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeRecordBatches, encodeRecordBatch, LogManager, type DecodedBatch } from '../../../src/log/index.js';
import { tempDir } from './helpers.js';

const WRITER = fileURLToPath(new URL('./crash-writer.ts', import.meta.url));
/** 20 by default; `npm run test:log:crash-long` runs more. */
const CYCLES = Number(process.env.CONCORDAT_CRASH_CYCLES ?? 20);

interface Ack {
  partition: number;
  baseOffset: number;
  lastOffset: number;
  tag: string;
}

interface Run {
  acks: Ack[];
  producerId: number;
}

/**
 * Runs the writer and SIGKILLs it at a random moment: after a random number
 * of acknowledgements, or a random time after it is ready (which may fall
 * before its first append, inside a recovery checkpoint, or inside a roll).
 */
function runWriterAndKill(dataDir: string, cycle: number): Promise<Run> {
  const byAcks = cycle % 2 === 0;
  const acksBeforeKill = 20 + Math.floor(Math.random() * 400);
  const msAfterReady = Math.floor(Math.random() * 400);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dataDir, String(cycle)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CONCORDAT_LOG_LEVEL: 'error' },
    });
    const run: Run = { acks: [], producerId: -1 };
    let buffered = '';
    let stderr = '';
    let killed = false;
    const kill = (): void => {
      if (killed) return;
      killed = true;
      child.kill('SIGKILL');
    };
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const [kind, a, b, c, d] = line.split(' ');
        if (kind === 'PRODUCER') run.producerId = Number(a);
        if (kind === 'READY' && !byAcks) setTimeout(kill, msAfterReady);
        if (kind !== 'ACK' || killed) continue;
        run.acks.push({ partition: Number(a), baseOffset: Number(b), lastOffset: Number(c), tag: d! });
        if (byAcks && run.acks.length >= acksBeforeKill) kill();
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(run);
      else reject(new Error(`writer exited with ${code ?? signal} before the kill: ${stderr}`));
    });
  });
}

describe('a writer killed with SIGKILL at random moments', () => {
  it(
    `loses no acknowledged record, keeps offsets contiguous, duplicates nothing, remembers its producer (${CYCLES} cycles)`,
    { timeout: 600_000 },
    async () => {
      const dataDir = await tempDir('concordat-crash-');
      const acked: Ack[] = [];
      let truncatedBytes = 0;
      let retriesChecked = 0;
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const run = await runWriterAndKill(dataDir, cycle);
        acked.push(...run.acks);
        const bytesOnDisk = await partitionBytes(dataDir);
        const logManager = await LogManager.open({ dataDir });
        try {
          const kept = [0, 1, 2].map((p) => logManager.describePartition('crash', p).sizeBytes);
          truncatedBytes += kept.reduce((sum, bytes, p) => sum + (bytesOnDisk[p]! - bytes), 0);
          const { values, batches } = await stored(logManager);
          const missing: string[] = [];
          for (const ack of acked) {
            for (let i = 0; i <= ack.lastOffset - ack.baseOffset; i++) {
              const value = values[ack.partition]!.get(ack.baseOffset + i);
              if (value !== `${ack.tag}/${i}`) missing.push(`partition ${ack.partition} offset ${ack.baseOffset + i}: ${value} instead of ${ack.tag}/${i}`);
            }
          }
          expect(missing).toEqual([]);
          if (await retryLastIdempotentBatch(logManager, batches, run.producerId, cycle)) retriesChecked += 1;
        } finally {
          await logManager.close();
        }
      }
      expect(acked.length).toBeGreaterThan(CYCLES * 5);
      expect(retriesChecked).toBeGreaterThan(CYCLES / 4);
      // Whether a kill tore a write is up to timing; recovery.test.ts tears tails on purpose.
      console.log(`acknowledged appends: ${acked.length}; torn bytes truncated on reopen: ${truncatedBytes}; idempotent retries checked: ${retriesChecked}`);
    },
  );
});

/**
 * The producer state survived the kill (snapshot + replay): sending the
 * producer's last stored batch again is answered as a duplicate with its
 * original offsets, and the next sequence is taken. False when the
 * producer stored nothing before the kill.
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

/** Bytes of the segment files of each partition of `crash`, before the log opens (and repairs) them. */
async function partitionBytes(dataDir: string): Promise<number[]> {
  const sizes: number[] = [];
  for (let partition = 0; partition < 3; partition++) {
    const dir = join(dataDir, `crash-${partition}`);
    let total = 0;
    for (const name of await readdir(dir).catch(() => [])) if (name.endsWith('.log')) total += (await stat(join(dir, name))).size;
    sizes.push(total);
  }
  return sizes;
}
