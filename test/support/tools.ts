import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';
import { beforeAll, beforeEach, inject, type TestContext } from 'vitest';
import { RDKAFKA_FEATURES, rdKafkaHasZstd, rdKafkaUsable } from './rdkafka.js';

/**
 * Client tools some broker and transport tests run against: those only
 * Debian ships (kcat/librdkafka, kafka-python, confluent-kafka; chromium for
 * the console's browser tests, driven by playwright-core), and
 * node-rdkafka, a development dependency that `npm ci` compiles (built
 * without a feature the tests need, such as zstd without libzstd's headers,
 * it counts as missing).
 *
 * Without them a test that needs one is skipped (and recorded, so the run
 * ends with a list of what it did not run and the command that installs
 * it, {@link installCommands}); under `CI` it fails instead, since `.ci/run`
 * installs them and CI must cover them. `global-setup.ts` provides the
 * record file and prints the list.
 */
export type Tool = 'kcat' | 'kafka-python' | 'confluent-kafka' | 'nats-server' | 'node-rdkafka' | 'node-rdkafka-zstd' | 'chromium';

/** The one command that installs every Debian tool these tests need. */
export const INSTALL_COMMAND = 'sudo apt-get install -y kcat python3-kafka python3-confluent-kafka chromium';

/** Debian's Chromium, which playwright-core drives (`npx playwright install` downloads a browser; these machines cannot). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * What makes `npm ci` build node-rdkafka with every feature the tests use:
 * node-gyp's toolchain, and the headers librdkafka's configure looks for
 * (OpenSSL for SCRAM and TLS, zlib for gzip, libzstd for zstd; snappy and lz4
 * are built in).
 */
export const RDKAFKA_INSTALL_COMMAND = 'sudo apt-get install -y g++ make python3 libssl-dev zlib1g-dev libzstd-dev && npm ci';

/** What gives node-rdkafka zstd: libzstd's headers, then a rebuild. */
export const RDKAFKA_ZSTD_INSTALL_COMMAND = 'sudo apt-get install -y libzstd-dev && npm rebuild node-rdkafka';

/** The Debian Python that has python3-kafka; pyenv's `python3` does not. */
export const DEBIAN_PYTHON = '/usr/bin/python3';

const command = (file: string, args: string[]) => (): boolean => spawnSync(file, args, { stdio: 'ignore', timeout: 30_000 }).status === 0;

const checks: Record<Tool, () => boolean> = {
  kcat: command('kcat', ['-V']),
  'kafka-python': command(DEBIAN_PYTHON, ['-c', 'import kafka']),
  'confluent-kafka': command(DEBIAN_PYTHON, ['-c', 'import confluent_kafka']),
  'nats-server': command('nats-server', ['--version']),
  chromium: command(CHROMIUM_PATH, ['--headless', '--no-sandbox', '--version']),
  // Loads in this process: the tests that need it load it anyway.
  'node-rdkafka': rdKafkaUsable,
  'node-rdkafka-zstd': rdKafkaHasZstd,
};

/** The commands that install `missing` (one per kind: Debian tools, node-rdkafka). */
export function installCommands(missing: readonly Tool[]): string[] {
  const commandFor = (tool: Tool): string => {
    if (tool === 'node-rdkafka') return `${RDKAFKA_INSTALL_COMMAND} (node-rdkafka with ${RDKAFKA_FEATURES.join(', ')})`;
    if (tool === 'node-rdkafka-zstd') return `${RDKAFKA_ZSTD_INSTALL_COMMAND} (node-rdkafka with zstd)`;
    return INSTALL_COMMAND;
  };
  const commands = new Set(missing.map(commandFor));
  return [...commands];
}

const present = new Map<Tool, boolean>();

/** The tools among `tools` that are not installed (each checked once per worker). */
export function missingTools(tools: readonly Tool[]): Tool[] {
  return tools.filter((tool) => {
    if (!present.has(tool)) {
      present.set(tool, checks[tool]());
    }
    return !present.get(tool);
  });
}

/** Whether this run must cover every test (CI sets `CI`; `.ci/run` sets it too). */
export function inCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

function missingError(missing: readonly Tool[]): Error {
  return new Error(
    `${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} required by this test and missing under CI, which must run it: ${installCommands(missing).join('; ')}`,
  );
}

/** Fails (throws) when `tool` is missing, with the command that installs it. */
export function requireTool(tool: Tool): void {
  if (missingTools([tool]).length > 0) throw missingError([tool]);
}

/** One line of the record file `global-setup.ts` reads at the end of the run. */
export interface SkippedForTools {
  /** Relative to the project root. */
  file: string;
  /** The test's name, or undefined for the whole file. */
  test?: string;
  missing: Tool[];
}

function record(filepath: string, test: string | undefined, missing: Tool[]): void {
  const path = inject('toolSkipsFile');
  if (!path) return;
  const entry: SkippedForTools = { file: relative(process.cwd(), filepath), test, missing };
  // One short line per write with O_APPEND: lines from the two forks do not interleave.
  appendFileSync(path, `${JSON.stringify(entry)}\n`);
}

const skipNote = (missing: readonly Tool[]): string => `${missing.join(', ')} missing: ${installCommands(missing).join('; ')}`;

/**
 * For a test file all of whose tests need `tools`; call it at the file's top
 * level, before its `beforeAll`. Returns whether they are all there: the
 * file's `beforeAll` returns early when not. When one is missing, every test
 * of the file is skipped (under CI: the file fails, naming it).
 */
export function fileNeedsTools(...tools: Tool[]): boolean {
  const missing = missingTools(tools);
  if (missing.length === 0) return true;
  if (inCi()) {
    beforeAll(() => {
      throw missingError(missing);
    });
    return false;
  }
  let recorded = false;
  beforeEach(({ task, skip }) => {
    if (!recorded) record(task.file.filepath, undefined, missing);
    recorded = true;
    skip(skipNote(missing));
  });
  return false;
}

/**
 * For one test that needs `tools`; call it first in the test. When one is
 * missing the test is skipped (under CI: it fails, naming it).
 */
export function testNeedsTools(context: TestContext, ...tools: Tool[]): void {
  const missing = missingTools(tools);
  if (missing.length === 0) return;
  if (inCi()) throw missingError(missing);
  record(context.task.file.filepath, context.task.fullTestName ?? context.task.name, missing);
  context.skip(skipNote(missing));
}
