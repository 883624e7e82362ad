import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroupInfo, GroupSummary, OffsetResetPlan, TopicInfo, TopicSummary } from '../../../src/admin/index.js';
import { LogManager } from '../../../src/log/index.js';
import { cli, cliJson } from './helpers.js';

/**
 * `concordat topics` and `concordat groups` as processes on an app's
 * embedded log directory: what they print with --json (the src/admin
 * shapes) and as tables, and their refusal of a log directory another
 * process holds, which changes nothing. Each command is a process of its own
 * (about 2 s of CPU to start), so the steps share one directory and run in
 * order.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const T0 = Date.UTC(2026, 0, 1);

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concordat-cli-admin-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Generous bounds: each step starts several CLI processes, slow on a loaded machine.
describe("on an app's embedded log directory", { timeout: 180_000 }, () => {
  let appData: string;
  let logDir: string;

  beforeAll(async () => {
    appData = join(dir, 'app');
    logDir = join(appData, 'log');
    await mkdir(logDir, { recursive: true });
  });

  it('topics create, list and describe: --data names the app data directory, --log-dir the log itself', async () => {
    expect(await cliJson(['topics', 'create', 'orders', '--partitions', '2', '--config', 'retention.ms=3600000', '--data', appData])).toEqual({
      topic: 'orders',
      partitions: 2,
      created: true,
    });
    const logManager = await LogManager.open({ dataDir: logDir });
    await logManager.appendRecords(
      'orders',
      0,
      [T0, T0 + 1000, T0 + 2000].map((timestampMs) => ({ key: null, value: Buffer.from('order'), timestampMs })),
    );
    await logManager.close();

    expect(await cliJson<TopicSummary[]>(['topics', 'list', '--log-dir', logDir])).toEqual([{ name: 'orders', partitions: 2 }]);
    const info = await cliJson<TopicInfo>(['topics', 'describe', 'orders', '--data', appData]);
    expect(info.partitions).toEqual([
      { partition: 0, logStartOffset: 0, highWatermark: 3, sizeBytes: expect.any(Number), segments: 1 },
      { partition: 1, logStartOffset: 0, highWatermark: 0, sizeBytes: 0, segments: 1 },
    ]);
    expect(info.partitions[0]!.sizeBytes).toBeGreaterThan(0);
    expect(info.sizeBytes).toBe(info.partitions[0]!.sizeBytes);
    expect(info.configs).toContainEqual({ name: 'retention.ms', value: '3600000', isDefault: false });
    expect(info.configs).toContainEqual({ name: 'segment.ms', value: '604800000', isDefault: true });

    const text = await cli(['topics', 'describe', 'orders', '--log-dir', logDir]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`topic orders  partitions 2  size ${info.sizeBytes} bytes\n`);
    expect(text.stdout).toMatch(new RegExp(`^0 +0 +3 +${info.partitions[0]!.sizeBytes} +1$`, 'm'));
    expect(text.stdout).toMatch(/^retention\.ms +3600000 +topic$/m);

    const again = await cli(['topics', 'create', 'orders', '--partitions', '1', '--log-dir', logDir]);
    expect(again).toEqual({ code: 1, stdout: '', stderr: "concordat: Topic 'orders' already exists.\n" });
  });

  it('groups reset-offsets (to an offset, by time as a dry run), describe and list', async () => {
    expect(
      await cliJson<OffsetResetPlan>(['groups', 'reset-offsets', 'billing', '--topic', 'orders', '--partitions', '0', '--to-offset', '1', '--log-dir', logDir]),
    ).toEqual({
      groupId: 'billing',
      topic: 'orders',
      dryRun: false,
      applied: true,
      partitions: [{ partition: 0, currentOffset: -1, newOffset: 1, logStartOffset: 0, highWatermark: 3 }],
    });
    // By time, as a dry run: partition 0's first record at or after T0+1.5 s is offset 2; partition 1 is empty (its high watermark, 0).
    const dryText = await cli([
      'groups',
      'reset-offsets',
      'billing',
      '--topic',
      'orders',
      '--to-datetime',
      new Date(T0 + 1500).toISOString(),
      '--dry-run',
      '--log-dir',
      logDir,
    ]);
    expect(dryText.stdout).toBe(
      'dry run: group billing would move on orders as below (nothing committed)\n' +
        'GROUP    TOPIC   PARTITION  CURRENT-OFFSET  NEW-OFFSET\n' +
        'billing  orders  0          1               2\n' +
        'billing  orders  1          -               0\n',
    );

    const group = await cliJson<GroupInfo>(['groups', 'describe', 'billing', '--log-dir', logDir]);
    expect(group).toEqual({
      groupId: 'billing',
      state: 'Empty',
      protocolType: '',
      protocol: '',
      generationId: 0,
      leaderId: null,
      members: [],
      offsets: [{ topic: 'orders', partition: 0, committedOffset: 1, logStartOffset: 0, highWatermark: 3, lag: 2, memberId: null }],
    });
    expect(await cliJson<GroupSummary[]>(['groups', 'list', '--log-dir', logDir])).toEqual([{ groupId: 'billing', state: 'Empty', protocolType: '' }]);

    const noTarget = await cli(['groups', 'reset-offsets', 'billing', '--topic', 'orders', '--log-dir', logDir]);
    expect(noTarget).toEqual({
      code: 1,
      stdout: '',
      stderr: 'concordat: give exactly one of --to-earliest, --to-latest, --to-datetime <ISO 8601> and --to-offset <n>\n',
    });
  });

  it('refuses every command while another process has the directory open, and changes nothing', async () => {
    const logManager = await LogManager.open({ dataDir: logDir });
    try {
      const expected =
        `concordat: log directory ${logDir} is locked: process ${process.pid} has it open (a running concordat broker or app). ` +
        'Commands on a log directory need it to themselves, for reads too: opening a partition recovers it, which must not race the process appending to it, ' +
        'and group members and commits live in that process. For a running concordat broker, run the same command with --bootstrap <its host:port>; ' +
        'for an app using the embedded log, stop the app first\n';
      for (const args of [
        ['topics', 'list'],
        ['groups', 'reset-offsets', 'billing', '--topic', 'orders', '--to-latest'],
      ]) {
        expect(await cli([...args, '--data', appData])).toEqual({ code: 1, stdout: '', stderr: expected });
      }
      expect(logManager.listTopics()).toEqual(['orders']);
      expect(
        (await logManager.groups.fetchOffsets({ groupId: 'billing', topics: [{ topic: 'orders', partitions: [0] }] })).topics[0]!.partitions[0]!.offset,
      ).toBe(1);
    } finally {
      await logManager.close();
    }
  });

  it('topics delete; a directory that does not exist, or is not a log, is named and nothing is written', async () => {
    expect(await cliJson(['topics', 'delete', 'orders', '--log-dir', logDir])).toEqual({ topic: 'orders', deleted: true });
    expect(await cliJson(['topics', 'list', '--log-dir', logDir])).toEqual([]);
    const missing = join(dir, 'nowhere');
    expect(await cli(['topics', 'list', '--data', missing])).toEqual({
      code: 1,
      stdout: '',
      stderr:
        `concordat: no log directory ${missing}/log: name an app's log with --data <app data dir> (its log is <dir>/log) or a broker's with --log-dir <dir>, ` +
        'or a running broker with --bootstrap host:port\n',
    });
    expect(await readdir(dir)).not.toContain('nowhere');
    // The app's data directory given as the log: refused, and nothing is written there.
    const before = await readdir(appData);
    const notLog = await cli(['topics', 'list', '--log-dir', appData]);
    expect(notLog).toEqual({
      code: 1,
      stdout: '',
      stderr:
        `concordat: ${appData} is not a log directory (it has no .lock; it holds log), and nothing was written to it: ` +
        "name an app's data directory with --data <dir> (its log is <dir>/log), or a log directory with --log-dir <dir>\n",
    });
    expect(await readdir(appData)).toEqual(before);
  });
});
