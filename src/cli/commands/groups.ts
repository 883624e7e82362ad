import { InvalidArgumentError, type Command } from 'commander';
import type { GroupInfo, GroupSummary, OffsetResetPlan, OffsetResetTarget } from '../../admin/index.js';
import { logTargetOptions, withLogAdmin, type LogTargetFlags } from '../log-target.js';
import { fail, print, table } from '../output.js';

/**
 * `concordat groups list|describe|reset-offsets`, on the embedded log
 * directory or a running broker (see `../log-target.ts`). The operations are
 * `src/admin/`'s; this file formats.
 *
 * - `list` — every consumer group and its state;
 * - `describe <group>` — state, generation (embedded log only: Kafka's
 *   DescribeGroups has none), members and their assignment, and per
 *   partition the committed offset, the high watermark, the lag and the
 *   member it is assigned to;
 * - `reset-offsets <group> --topic <t> [--partitions 0,1]` with exactly one
 *   of `--to-earliest`, `--to-latest`, `--to-datetime <ISO 8601>`,
 *   `--to-offset <n>` (clamped to the partition's offsets, as Kafka's tool);
 *   `--dry-run` shows the plan and commits nothing. Refused while the group
 *   has members, dry run too, as Kafka's `kafka-consumer-groups` does.
 *
 * `--json` prints the `src/admin` shapes (GroupSummary[], GroupInfo, OffsetResetPlan).
 */
export function registerGroupsCommand(program: Command): void {
  const groups = program.command('groups').description('list and describe consumer groups, reset their offsets');
  const options = (command: Command): Command => logTargetOptions(command).option('--json', 'print JSON', false);

  options(groups.command('list').description('every consumer group and its state')).action((flags: Flags) =>
    withLogAdmin(flags, async (admin) => {
      const list = await admin.listGroups();
      print(flags.json ? JSON.stringify(list, null, 2) : formatList(list));
    }),
  );

  options(groups.command('describe').description('state, members, assignment, committed offsets and lag of a group').argument('<group>')).action(
    (group: string, flags: Flags) =>
      withLogAdmin(flags, async (admin) => {
        const info = await admin.describeGroup(group);
        print(flags.json ? JSON.stringify(info, null, 2) : formatGroup(info));
      }),
  );

  options(groups.command('reset-offsets').description("move a group's committed offsets on a topic (only while the group has no members)").argument('<group>'))
    .requiredOption('--topic <topic>', 'the topic whose offsets move')
    .option('--partitions <list>', 'only these partitions (comma-separated; default: all)', partitionList)
    .option('--to-earliest', 'to the log start offset')
    .option('--to-latest', 'to the high watermark (skip everything there is)')
    .option('--to-datetime <iso>', 'to the first record at or after this time (ISO 8601, e.g. 2026-12-07T10:00:00Z)', datetime)
    .option('--to-offset <n>', 'to this offset (clamped to the log start offset and the high watermark)', offset)
    .option('--dry-run', 'show the plan, commit nothing', false)
    .action((group: string, flags: ResetFlags) => {
      const to = targetOf(flags);
      return withLogAdmin(flags, async (admin) => {
        const plan = await admin.resetOffsets({
          groupId: group,
          topic: flags.topic,
          to,
          dryRun: flags.dryRun,
          ...(flags.partitions !== undefined && { partitions: flags.partitions }),
        });
        print(flags.json ? JSON.stringify(plan, null, 2) : formatPlan(plan));
      });
    });
}

interface Flags extends LogTargetFlags {
  json: boolean;
}

interface ResetFlags extends Flags {
  topic: string;
  partitions?: number[];
  toEarliest?: boolean;
  toLatest?: boolean;
  toDatetime?: number;
  toOffset?: number;
  dryRun: boolean;
}

function targetOf(flags: ResetFlags): OffsetResetTarget {
  const targets: OffsetResetTarget[] = [];
  if (flags.toEarliest === true) targets.push({ kind: 'earliest' });
  if (flags.toLatest === true) targets.push({ kind: 'latest' });
  if (flags.toDatetime !== undefined) targets.push({ kind: 'datetime', timestampMs: flags.toDatetime });
  if (flags.toOffset !== undefined) targets.push({ kind: 'offset', offset: flags.toOffset });
  if (targets.length !== 1) fail('give exactly one of --to-earliest, --to-latest, --to-datetime <ISO 8601> and --to-offset <n>');
  return targets[0]!;
}

function formatList(list: GroupSummary[]): string {
  if (list.length === 0) return 'no consumer groups';
  return table(
    ['GROUP', 'STATE', 'PROTOCOL-TYPE'],
    list.map((g) => [g.groupId, g.state, g.protocolType || '-']),
  );
}

function formatGroup(info: GroupInfo): string {
  const generation = info.generationId === null ? '' : `  generation ${info.generationId}`;
  const head = `group ${info.groupId}  state ${info.state}${generation}  protocol ${info.protocol || '-'}  members ${info.members.length}`;
  const members =
    info.members.length === 0
      ? 'no members'
      : table(
          ['MEMBER-ID', 'CLIENT-ID', 'HOST', 'ASSIGNMENT'],
          info.members.map((m) => [m.memberId, m.clientId, m.clientHost, m.assignment.map((a) => `${a.topic}:${a.partitions.join(',')}`).join(' ') || '-']),
        );
  const offsets =
    info.offsets.length === 0
      ? 'no committed offsets'
      : table(
          ['TOPIC', 'PARTITION', 'COMMITTED-OFFSET', 'LOG-START-OFFSET', 'HIGH-WATERMARK', 'LAG', 'MEMBER-ID'],
          info.offsets.map((o) => [
            o.topic,
            String(o.partition),
            o.committedOffset < 0 ? '-' : String(o.committedOffset),
            String(o.logStartOffset),
            String(o.highWatermark),
            String(o.lag),
            o.memberId ?? '-',
          ]),
        );
  return [head, '', members, '', offsets].join('\n');
}

function formatPlan(plan: OffsetResetPlan): string {
  const head = plan.dryRun
    ? `dry run: group ${plan.groupId} would move on ${plan.topic} as below (nothing committed)`
    : `reset group ${plan.groupId} on ${plan.topic}:`;
  const rows = plan.partitions.map((p) => [
    plan.groupId,
    plan.topic,
    String(p.partition),
    p.currentOffset < 0 ? '-' : String(p.currentOffset),
    String(p.newOffset),
  ]);
  return [head, table(['GROUP', 'TOPIC', 'PARTITION', 'CURRENT-OFFSET', 'NEW-OFFSET'], rows)].join('\n');
}

function partitionList(value: string): number[] {
  const parts = value.split(',').map((p) => p.trim());
  const bad = parts.find((p) => !/^\d+$/.test(p));
  if (bad !== undefined) throw new InvalidArgumentError(`not a partition number: ${bad || '(empty)'} (give e.g. 0,2,3)`);
  return parts.map(Number);
}

function datetime(value: string): number {
  // ISO 8601 with a date; without a zone it is the local time, as Kafka's tool reads it.
  const ms = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`not an ISO 8601 time: ${value} (e.g. 2026-12-07T10:00:00Z)`);
  return ms;
}

function offset(value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError(`not an offset: ${value}`);
  return Number(value);
}
