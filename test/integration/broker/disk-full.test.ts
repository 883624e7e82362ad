import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { decodeRecordBatches, LogManager } from '../../../src/log/index.js';

/**
 * `concordat broker` on a full disk: its log lives on a 2 MiB tmpfs this file
 * mounts (tests run as root; without the right to mount, the test is
 * skipped and says why), a filler file takes the space, and a kafkajs
 * producer (acks=all, no retries of its own, so the broker's answer is
 * seen) gets Kafka's KAFKA_STORAGE_ERROR, which it counts as retriable.
 * Once the filler is deleted the same producer succeeds, and after a clean
 * shutdown everything acknowledged is in the log.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
const RECORD_BYTES = 16 * 1024;
const HEADROOM_BYTES = 320 * 1024;

let mountPoint = '';
let mountRefused: string | null = null;

beforeAll(async () => {
  mountPoint = await mkdtemp(join(tmpdir(), 'concordat-broker-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint], { stdio: 'pipe' });
  } catch (error) {
    mountRefused = `mount -t tmpfs was refused (${(error as Error).message.split('\n')[0]}): this test needs root with CAP_SYS_ADMIN`;
  }
});

afterAll(async () => {
  if (mountRefused === null) execFileSync('umount', [mountPoint]);
  await rm(mountPoint, { recursive: true, force: true });
});

function startBroker(dataDir: string): Promise<{ child: ChildProcess; port: number; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'broker', '--data', dataDir, '--port', '0'], {
    env: { ...process.env, CONCORDAT_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start: ${stderr.join('\n')}`)), 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /^concordat broker listening on 127\.0\.0\.1:(\d+) /.exec(line);
      if (match === null) return;
      clearTimeout(timer);
      resolve({ child, port: Number(match[1]), exited });
    });
    void exited.then((code) => reject(new Error(`broker exited ${code}: ${stderr.join('\n')}`)));
  });
}

/** The innermost error of a kafkajs error chain. */
function rootCause(error: unknown): { type?: string; retriable?: boolean; name?: string; message?: string } {
  let current = error as { cause?: unknown; originalError?: unknown };
  while (current.originalError !== undefined || current.cause !== undefined) current = (current.originalError ?? current.cause) as typeof current;
  return current as { type?: string; retriable?: boolean };
}

describe('concordat broker on a full disk', () => {
  it(
    'answers produce with KAFKA_STORAGE_ERROR (retriable) and accepts it again once space returns; nothing acknowledged is lost',
    { timeout: 90_000 },
    async (ctx) => {
      if (mountRefused !== null) return ctx.skip(mountRefused);
      const dataDir = join(mountPoint, 'data');
      const filler = join(mountPoint, 'filler');
      const broker = await startBroker(dataDir);
      onTestFinished(() => {
        broker.child.kill('SIGKILL');
      });
      const kafka = new Kafka({ brokers: [`127.0.0.1:${broker.port}`], clientId: 'disk-full', logLevel: logLevel.NOTHING, retry: { retries: 0 } });
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: 'full', numPartitions: 1 }] });
      await admin.disconnect();
      const producer = kafka.producer({ retry: { retries: 0 } });
      await producer.connect();
      onTestFinished(() => producer.disconnect());
      const fs = await statfs(mountPoint);
      await writeFile(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - HEADROOM_BYTES)));

      const acknowledged: string[] = [];
      let failure: unknown = null;
      for (let i = 0; i < 200 && failure === null; i++) {
        const value = `k${i}`.padEnd(RECORD_BYTES, '.');
        try {
          const [meta] = await producer.send({ topic: 'full', acks: -1, messages: [{ partition: 0, value }] });
          expect(Number(meta!.baseOffset)).toBe(acknowledged.length);
          acknowledged.push(value);
        } catch (error) {
          failure = error;
        }
      }
      expect(failure).not.toBeNull();
      const cause = rootCause(failure);
      expect([cause.type, cause.retriable], String(failure)).toEqual(['KAFKA_STORAGE_ERROR', true]);
      expect(acknowledged.length).toBeGreaterThan(3);

      await rm(filler);
      const [after] = await producer.send({ topic: 'full', acks: -1, messages: [{ partition: 0, value: 'after' }] });
      expect(Number(after!.baseOffset)).toBe(acknowledged.length);
      await producer.disconnect();
      broker.child.kill('SIGTERM');
      expect(await broker.exited).toBe(0);

      const logManager = await LogManager.open({ dataDir });
      onTestFinished(() => logManager.close());
      const values: string[] = [];
      let offset = 0;
      while (offset < logManager.describePartition('full', 0).highWatermark) {
        const { records } = await logManager.read('full', 0, offset, { maxBytes: 1 << 20 });
        for (const batch of decodeRecordBatches(records)) {
          for (const record of batch.records) values.push(record.value!.toString());
          offset = batch.lastOffset + 1;
        }
      }
      expect(values).toEqual([...acknowledged, 'after']);
      expect((await readdir(dataDir, { recursive: true })).map(String).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    },
  );
});
