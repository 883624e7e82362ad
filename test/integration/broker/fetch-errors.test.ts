import { spawn } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import { LogManager } from '../../../src/log/index.js';
import { startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { run } from './helpers/process.js';

/**
 * Every error a Fetch answers for a partition, as librdkafka (kcat 1.7.1,
 * librdkafka 2.0.2) and kafkajs see it: OFFSET_OUT_OF_RANGE,
 * UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR and
 * a consumed topic that is deleted.
 *
 * An error partition carries an empty record set (size 0). With a null one
 * (size -1) librdkafka dropped the whole response as a parse failure
 * ("invalid MessageSetSize -1"), never saw the error code and fetched again
 * at once, forever. Each kcat test asserts that librdkafka saw the error by
 * name (its `-d fetch` backoff line), recovered as it does with Kafka, and
 * logged no parse failure.
 *
 * Faults: the log's `read` of one topic fails a given number of times with
 * the error the log throws in that state (a seam: everything else is the
 * real log); a disk error is a real `FileHandle.read` failing with EIO.
 */
let t: TestBroker;
let logManager: LogManager;
let logDir: string;

interface ReadFault {
  left: number;
  error: () => Error;
}
/** Topic → the next reads of it that fail. */
const faults = new Map<string, ReadFault>();

beforeAll(async () => {
  logDir = await mkdtemp(join(tmpdir(), 'concordat-fetch-errors-'));
  logManager = await LogManager.open({ dataDir: logDir });
  const read = logManager.read.bind(logManager);
  logManager.read = async (topic, partition, offset, options) => {
    const fault = faults.get(topic);
    if (fault !== undefined && fault.left > 0) {
      fault.left -= 1;
      throw fault.error();
    }
    return read(topic, partition, offset, options);
  };
  t = await startTestBroker({}, { logManager });
});

afterAll(async () => {
  await t?.stop();
  await logManager?.close();
  if (logDir !== undefined) await rm(logDir, { recursive: true, force: true });
});

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

/** A topic of one partition holding `values` at offsets 0, 1, ... */
async function topicWith(prefix: string, values: string[]): Promise<string> {
  const topic = uniqueName(prefix);
  await logManager.createTopic(topic, { partitions: 1 });
  if (values.length > 0)
    await logManager.appendRecords(
      topic,
      0,
      values.map((v) => ({ key: null, value: Buffer.from(v), headers: [] })),
    );
  return topic;
}

function failReads(topic: string, count: number, error: () => Error): ReadFault {
  const fault = { left: count, error };
  faults.set(topic, fault);
  onTestFinished(() => {
    faults.delete(topic);
  });
  return fault;
}

/** kcat consuming partition 0 of `topic` until its end (-e), with librdkafka's fetch debug log on stderr. */
function kcatConsume(topic: string, args: string[]) {
  return run('kcat', ['-b', t.bootstrap, '-C', '-t', topic, '-p', '0', '-e', '-d', 'fetch', '-f', '%o %s\\n', ...args], { timeoutMs: 20_000 });
}

/** librdkafka's parse failures of a Fetch response: the symptom of a null record set. */
function parseFailures(stderr: string): number {
  return stderr.split('\n').filter((line) => line.includes('invalid MessageSetSize') || line.includes('Protocol parse failure for Fetch')).length;
}

/** The errors librdkafka backed off for, by its names ("Fetch backoff for 500ms: Broker: Offset out of range"). */
function fetchBackoffs(stderr: string): string[] {
  return [...stderr.matchAll(/Fetch backoff for \d+ms: (Broker: [^\n]+)/g)].map((m) => m[1]!);
}

describe('Fetch errors with librdkafka (kcat)', () => {
  it('OFFSET_OUT_OF_RANGE: librdkafka resets by auto.offset.reset and consumes', async (context) => {
    testNeedsTools(context, 'kcat');
    const topic = await topicWith('out-of-range', ['hello', 'world']);
    const earliest = await kcatConsume(topic, ['-o', '100', '-X', 'auto.offset.reset=earliest']);
    expect(parseFailures(earliest.stderr)).toBe(0);
    expect(earliest.stderr).toContain('offset reset (at offset 100, broker 1) to BEGINNING');
    expect(fetchBackoffs(earliest.stderr)).toEqual(['Broker: Offset out of range']);
    expect({ code: earliest.code, stdout: earliest.stdout }).toEqual({ code: 0, stdout: '0 hello\n1 world\n' });
    // The default reset (latest) moves to the end: nothing to print, and kcat ends there.
    const latest = await kcatConsume(topic, ['-o', '100']);
    expect(parseFailures(latest.stderr)).toBe(0);
    expect(latest.stderr).toContain('offset reset (at offset 100, broker 1) to END');
    expect(latest.stderr).toContain(`Reached end of topic ${topic} [0] at offset 2: exiting`);
    expect({ code: latest.code, stdout: latest.stdout }).toEqual({ code: 0, stdout: '' });
  });

  const transient = [
    {
      name: 'UNKNOWN_TOPIC_OR_PARTITION',
      librdkafka: 'Broker: Unknown topic or partition',
      // As the log throws it for a partition it does not have (a topic deleted and created again).
      error: (topic: string) => new ConcordatError(`unknown topic '${topic}'`, { code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION }),
    },
    {
      name: 'NOT_LEADER_OR_FOLLOWER',
      librdkafka: 'Broker: Not leader for partition',
      // As the log throws it for a partition closed under the read (LOG_CLOSED).
      error: (topic: string) => new ConcordatError(`topic '${topic}' partition 0 is closed`, { code: ErrorCode.LOG_CLOSED }),
    },
  ];
  for (const c of transient) {
    it(`${c.name}: librdkafka refreshes metadata, backs off, fetches again and consumes`, async (context) => {
      testNeedsTools(context, 'kcat');
      const topic = await topicWith(c.name.toLowerCase(), ['a', 'b']);
      const fault = failReads(topic, 2, () => c.error(topic));
      const result = await kcatConsume(topic, ['-o', 'beginning']);
      expect(parseFailures(result.stderr)).toBe(0);
      expect(fault.left).toBe(0);
      expect(fetchBackoffs(result.stderr)).toEqual([c.librdkafka, c.librdkafka]);
      expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 0, stdout: '0 a\n1 b\n' });
    });
  }

  it('KAFKA_STORAGE_ERROR: a read failing with EIO is retried by librdkafka, which then consumes', async (context) => {
    testNeedsTools(context, 'kcat');
    const topic = await topicWith('disk-error', ['x', 'y']);
    let failures = 2;
    await failFileReads(() => failures-- > 0);
    const result = await kcatConsume(topic, ['-o', 'beginning']);
    expect(parseFailures(result.stderr)).toBe(0);
    expect(failures).toBeLessThan(0);
    const diskError = 'Broker: Disk error when trying to access log file on disk';
    expect(fetchBackoffs(result.stderr)).toEqual([diskError, diskError]);
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 0, stdout: '0 x\n1 y\n' });
  });

  it('a consumed topic that is deleted: librdkafka learns it from the Fetch error, finds the topic gone and kcat ends with that error', async (context) => {
    testNeedsTools(context, 'kcat');
    const topic = await topicWith('deleted', ['only']);
    // -u: unbuffered output, so the record shows before kcat ends.
    const args = ['-b', t.bootstrap, '-C', '-u', '-t', topic, '-p', '0', '-o', 'beginning', '-d', 'fetch', '-f', '%o %s\\n'];
    const child = spawn('kcat', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    onTestFinished(() => {
      clearTimeout(timer);
      child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const consumed = new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('0 only\n')) resolve();
      });
    });
    await Promise.race([consumed, exited]);
    expect(stdout).toBe('0 only\n');
    await logManager.deleteTopic(topic);
    // Before the fix, kcat fetched the deleted partition in a tight loop until killed.
    expect(await exited).toBe(1);
    expect(parseFailures(stderr)).toBe(0);
    expect(fetchBackoffs(stderr)).toContain('Broker: Unknown topic or partition');
    expect(stderr).toContain(`% ERROR: Topic ${topic} [0] error: ${topic} [0]: desired partition is no longer available (Local: Unknown partition)`);
  });
});

describe('Fetch errors with kafkajs', () => {
  const kafka = () => new Kafka({ brokers: [t.bootstrap], clientId: 'fetch-errors', logLevel: logLevel.NOTHING, retry: { initialRetryTime: 50, retries: 8 } });

  /** Consumes `count` values of `topic` with a fresh group. */
  async function consumeValues(topic: string, count: number, setup?: (groupId: string) => Promise<void>): Promise<string[]> {
    const groupId = uniqueName('fetch-errors');
    await setup?.(groupId);
    const consumer = kafka().consumer({ groupId, maxWaitTimeInMs: 100 });
    const values: string[] = [];
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${values.length} of ${count} records within 20 s`)), 20_000);
        void consumer.run({
          eachMessage: async ({ message }) => {
            values.push(message.value!.toString());
            if (values.length === count) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
    return values;
  }

  it('OFFSET_OUT_OF_RANGE: a committed offset past the end is reset to the earliest (fromBeginning)', async () => {
    const topic = await topicWith('kafkajs-range', ['p', 'q']);
    const values = await consumeValues(topic, 2, async (groupId) => {
      const admin = kafka().admin();
      await admin.connect();
      try {
        await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '100' }] });
      } finally {
        await admin.disconnect();
      }
    });
    expect(values).toEqual(['p', 'q']);
  });

  it('UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER and KAFKA_STORAGE_ERROR are retried', async () => {
    const topic = await topicWith('kafkajs-transient', ['r', 's']);
    const errors = [
      new ConcordatError(`unknown topic '${topic}'`, { code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION }),
      new ConcordatError(`topic '${topic}' partition 0 is closed`, { code: ErrorCode.LOG_CLOSED }),
      new ConcordatError('read failed: EIO', { code: ErrorCode.KAFKA_STORAGE_ERROR, retriable: true }),
    ];
    let next = 0;
    const fault = failReads(topic, errors.length, () => errors[next++]!);
    expect(await consumeValues(topic, 2)).toEqual(['r', 's']);
    expect(fault.left).toBe(0);
  });
});

/** Makes the next `FileHandle.read` calls fail with EIO while `shouldFail()` says so; restored when the test ends. */
async function failFileReads(shouldFail: () => boolean): Promise<void> {
  const probe = await open(logDir, 'r');
  const prototype = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> };
  await probe.close();
  const original = prototype.read;
  prototype.read = function maybeFail(this: unknown, ...args: unknown[]) {
    if (shouldFail()) return Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', errno: -5, syscall: 'read' }));
    return original.apply(this, args);
  };
  onTestFinished(() => {
    prototype.read = original;
  });
}
