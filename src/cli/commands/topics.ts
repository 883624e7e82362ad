import { InvalidArgumentError, type Command } from 'commander';
import type { TopicInfo, TopicSummary } from '../../admin/index.js';
import { logTargetOptions, withLogAdmin, type LogTargetFlags } from '../log-target.js';
import { print, table } from '../output.js';

/**
 * `concordat topics list|describe|create|delete`, on the embedded log
 * directory (`--data <app data dir>` or `--log-dir <dir>`, refused while a
 * broker or an app has it open) or a running broker (`--bootstrap`); see
 * `../log-target.ts`. The operations are `src/admin/`'s; this file formats.
 *
 * - `list` — every topic and its partition count;
 * - `describe <topic>` — per partition the log start offset, the high
 *   watermark, size on disk and segments (embedded log only: kafkajs has no
 *   DescribeLogDirs), and the topic's configs under Kafka's names;
 * - `create <topic> --partitions <n> [--config name=value ...]`;
 * - `delete <topic>` — its records and the groups' committed offsets go too.
 *
 * `--json` prints the `src/admin` shapes (TopicSummary[], TopicInfo, and
 * `{ topic, partitions, created: true }` / `{ topic, deleted: true }`).
 */
export function registerTopicsCommand(program: Command): void {
  const topics = program.command('topics').description('list, describe, create and delete topics of the embedded log or a broker');
  const options = (command: Command): Command => logTargetOptions(command).option('--json', 'print JSON', false);

  options(topics.command('list').description('every topic and its partition count')).action((flags: Flags) =>
    withLogAdmin(flags, async (admin) => {
      const list = await admin.listTopics();
      print(flags.json ? JSON.stringify(list, null, 2) : formatList(list));
    }),
  );

  options(topics.command('describe').description('partitions, offsets, sizes and configs of a topic').argument('<topic>')).action(
    (topic: string, flags: Flags) =>
      withLogAdmin(flags, async (admin) => {
        const info = await admin.describeTopic(topic);
        print(flags.json ? JSON.stringify(info, null, 2) : formatTopic(info));
      }),
  );

  options(topics.command('create').description('create a topic').argument('<topic>'))
    .requiredOption('--partitions <n>', 'number of partitions', positive)
    .option('--config <name=value>', 'a topic config under its Kafka name (retention.ms=86400000); repeatable', config, {} as Record<string, string>)
    .action((topic: string, flags: CreateFlags) =>
      withLogAdmin(flags, async (admin) => {
        await admin.createTopic({ name: topic, partitions: flags.partitions, configs: flags.config });
        print(
          flags.json
            ? JSON.stringify({ topic, partitions: flags.partitions, created: true })
            : `created topic ${topic} with ${flags.partitions} partition(s) in ${admin.target}`,
        );
      }),
    );

  options(topics.command('delete').description("delete a topic, its records and the groups' committed offsets for it").argument('<topic>')).action(
    (topic: string, flags: Flags) =>
      withLogAdmin(flags, async (admin) => {
        await admin.deleteTopic(topic);
        print(flags.json ? JSON.stringify({ topic, deleted: true }) : `deleted topic ${topic} from ${admin.target}`);
      }),
  );
}

interface Flags extends LogTargetFlags {
  json: boolean;
}

interface CreateFlags extends Flags {
  partitions: number;
  config: Record<string, string>;
}

function formatList(list: TopicSummary[]): string {
  if (list.length === 0) return 'no topics';
  return table(
    ['TOPIC', 'PARTITIONS'],
    list.map((t) => [t.name, String(t.partitions)]),
  );
}

function formatTopic(info: TopicInfo): string {
  const size = info.sizeBytes === null ? '' : `  size ${info.sizeBytes} bytes`;
  const unknown = (n: number | null) => (n === null ? '-' : String(n));
  const partitions = table(
    ['PARTITION', 'LOG-START-OFFSET', 'HIGH-WATERMARK', 'SIZE-BYTES', 'SEGMENTS'],
    info.partitions.map((p) => [String(p.partition), String(p.logStartOffset), String(p.highWatermark), unknown(p.sizeBytes), unknown(p.segments)]),
  );
  const configs = table(
    ['CONFIG', 'VALUE', 'SOURCE'],
    info.configs.map((c) => [c.name, c.value ?? '(hidden)', c.isDefault ? 'default' : 'topic']),
  );
  return [`topic ${info.name}  partitions ${info.partitions.length}${size}`, '', partitions, '', configs].join('\n');
}

function positive(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`not a positive integer: ${value}`);
  return Number(value);
}

function config(value: string, previous: Record<string, string>): Record<string, string> {
  const at = value.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`not name=value: ${value} (e.g. retention.ms=86400000)`);
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}
