import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { describeRounds, median, ratioLine, startBrokerProcess, timed, type Measured } from './support.js';

/**
 * kcat (librdkafka) producing N records of 100 B from a file into
 * `concordat broker` (its own process, flushMode sync: every acknowledgement
 * follows an fdatasync shared by concurrent appends) and into librdkafka's
 * in-memory mock broker (`-X test.mock.num.brokers=1`, inside the kcat
 * process). Same producer settings: acks=all, librdkafka's batching defaults.
 * Target: ≥ 0.5× the mock's rate.
 */
export const RECORD_BYTES = 100;

export async function writeRecordsFile(path: string, records: number): Promise<void> {
  const out = createWriteStream(path);
  const line = (i: number) => `${String(i).padStart(10, '0')}${'x'.repeat(RECORD_BYTES - 10)}\n`;
  for (let i = 0; i < records; i += 1) {
    if (!out.write(line(i))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

function kcatProduce(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('kcat', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`kcat exited ${code}: ${stderr}`))));
  });
}

const PRODUCER = ['-X', 'acks=all', '-q'];

async function intoConcordat(dataDir: string, file: string, records: number, topic: string): Promise<Measured> {
  const broker = await startBrokerProcess(dataDir, ['--auto-create-topics']);
  try {
    const { ms } = await timed(() => kcatProduce(['-b', broker.bootstrap, '-P', '-t', topic, '-p', '0', '-l', ...PRODUCER, file]));
    return { records, bytes: records * RECORD_BYTES, ms };
  } finally {
    await broker.stop();
  }
}

async function intoMock(file: string, records: number, topic: string): Promise<Measured> {
  const { ms } = await timed(() => kcatProduce(['-X', 'test.mock.num.brokers=1', '-b', '127.0.0.1:1', '-P', '-t', topic, '-p', '0', '-l', ...PRODUCER, file]));
  return { records, bytes: records * RECORD_BYTES, ms };
}

/**
 * Rounds alternate concordat and mock; the log written by the first round
 * stays in `dataDir` (the catch-up benchmark reads it), later rounds write
 * to their own directories.
 */
export async function benchKcatProduce(options: {
  dataDir: string;
  file: string;
  records: number;
  topic: string;
  rounds: number;
}): Promise<{ lines: string[] }> {
  const ours: Measured[] = [];
  const mock: Measured[] = [];
  for (let round = 0; round < options.rounds; round += 1) {
    const dir = round === 0 ? options.dataDir : `${options.dataDir}-round${round}`;
    ours.push(await intoConcordat(dir, options.file, options.records, options.topic));
    if (round > 0) await rm(dir, { recursive: true, force: true });
    mock.push(await intoMock(options.file, options.records, options.topic));
  }
  return {
    lines: [
      describeRounds('kcat → concordat broker (fdatasync acks)', ours),
      describeRounds('kcat → librdkafka mock broker (memory)  ', mock),
      ratioLine('concordat / mock (medians)', median(ours), median(mock), 0.5),
    ],
  };
}
