import { readdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConfigSource, describeTopicConfig, topicConfigFromKafka } from '../broker/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { CONSUMER_PROTOCOL_TYPE, decodeAssignment, GroupState, LogManager, type GroupDescription } from '../log/index.js';
import type { Logger } from '../observability/index.js';
import type {
  CreateTopicRequest,
  GroupInfo,
  GroupMemberInfo,
  GroupPartitionOffset,
  GroupSummary,
  LogAdmin,
  OffsetResetPlan,
  OffsetResetRequest,
  TopicInfo,
  TopicSummary,
} from './log-admin.js';
import { groupHasMembers, partitionsToReset, resetOffsetFor, unknownTopic } from './offsets.js';

/** What {@link EmbeddedLogAdmin.open} is given. */
export interface EmbeddedLogAdminOptions {
  /** The log directory: an app's `<dataDir>/log`, or what `concordat broker --data` serves. Must exist. */
  logDir: string;
  /** Where the log's own lines go while it is open. @default Concordat's logger */
  logger?: Logger;
}

/**
 * {@link LogAdmin} over an embedded log, through the log engine's API.
 *
 * Two ways in:
 * - {@link EmbeddedLogAdmin.open} opens a log directory for itself (the
 *   CLI). The log engine takes the directory's OS lock (`log/dir-lock.ts`)
 *   for as long as the admin is open, for reads too: opening a partition
 *   recovers it (it may truncate a torn tail and rebuild indexes), which
 *   must not race the process that appends to it, and the committed offsets
 *   and group members live in that process's memory. So while a broker or
 *   an app has the directory open, every command is refused with
 *   LOG_DIR_LOCKED and told to go through the running broker
 *   (`--bootstrap`), or to stop the app.
 * - {@link EmbeddedLogAdmin.over} wraps a log this process already has open
 *   (an app's embedded transport, a broker); `close` then leaves it open.
 *
 * Topic configs are reported and accepted under Kafka's names, through the
 * same table as the broker's DescribeConfigs and CreateTopics
 * (`broker/topic-configs.ts`).
 */
export class EmbeddedLogAdmin implements LogAdmin {
  private constructor(
    private readonly logManager: LogManager,
    readonly target: string,
    private readonly owned: boolean,
  ) {}

  /**
   * Opens the log in `options.logDir` for this admin alone; close it with {@link close}.
   * @throws ConcordatError LOG_DIR_LOCKED while another process has it open (the message says what to do instead);
   *   CONFIG_INVALID when the directory does not exist (nothing is created) or is neither empty nor a log
   *   (no `.lock`; nothing is written); STORAGE_CORRUPT as LogManager.open
   */
  static async open(options: EmbeddedLogAdminOptions): Promise<EmbeddedLogAdmin> {
    const dir = resolve(options.logDir);
    const isDir = await stat(dir).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!isDir) {
      throw new ConcordatError(
        `no log directory ${dir}: name an app's log with --data <app data dir> (its log is <dir>/log) or a broker's with --log-dir <dir>, ` +
          'or a running broker with --bootstrap host:port',
        { code: ErrorCode.CONFIG_INVALID, context: { logDir: dir } },
      );
    }
    await assertLogDirectory(dir);
    try {
      const logManager = await LogManager.open({ dataDir: dir }, options.logger === undefined ? {} : { logger: options.logger });
      return new EmbeddedLogAdmin(logManager, `log directory ${dir}`, true);
    } catch (error) {
      if (error instanceof ConcordatError && error.code === ErrorCode.LOG_DIR_LOCKED) throw inUse(dir, error);
      throw error;
    }
  }

  /** An admin over a log this process has open; {@link close} leaves the log open. */
  static over(logManager: LogManager): EmbeddedLogAdmin {
    return new EmbeddedLogAdmin(logManager, `log directory ${logManager.options.dataDir}`, false);
  }

  async listTopics(): Promise<TopicSummary[]> {
    return this.logManager.listTopics().map((name) => ({ name, partitions: this.logManager.partitionCount(name) ?? 0 }));
  }

  async describeTopic(name: string): Promise<TopicInfo> {
    if (!this.logManager.hasTopic(name)) throw unknownTopic(name, this.target);
    const described = this.logManager.describeTopic(name);
    const partitions = described.partitions.map((p) => ({
      partition: p.partition,
      logStartOffset: p.logStartOffset,
      highWatermark: p.highWatermark,
      sizeBytes: p.sizeBytes,
      segments: p.segmentCount,
    }));
    const configs = describeTopicConfig(described.config, this.logManager.options.topicDefaults, described.extraConfigs).map((c) => ({
      name: c.name,
      value: c.value,
      isDefault: c.source !== ConfigSource.TOPIC_CONFIG,
    }));
    return { name, partitions, sizeBytes: partitions.reduce((sum, p) => sum + p.sizeBytes, 0), configs };
  }

  async createTopic(request: CreateTopicRequest): Promise<void> {
    const entries = Object.entries(request.configs ?? {}).map(([name, value]) => ({ name, value }));
    const parsed = topicConfigFromKafka(entries, this.logManager.options.topicDefaults);
    if ('refusal' in parsed) {
      throw new ConcordatError(`topic '${request.name}': ${parsed.refusal}`, { code: ErrorCode.INVALID_CONFIG, context: { topic: request.name } });
    }
    await this.logManager.createTopic(request.name, { partitions: request.partitions, config: parsed.config, extraConfigs: parsed.extraConfigs });
  }

  async deleteTopic(name: string): Promise<void> {
    if (!this.logManager.hasTopic(name)) throw unknownTopic(name, this.target);
    await this.logManager.deleteTopic(name);
  }

  async listGroups(): Promise<GroupSummary[]> {
    return this.logManager.groups
      .listGroups()
      .map((g) => ({ groupId: g.groupId, state: g.state, protocolType: g.protocolType }))
      .sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0));
  }

  async describeGroup(groupId: string): Promise<GroupInfo> {
    const group = this.logManager.groups.describeGroup(groupId);
    const members = group.members.map((m) => memberInfo(group, m));
    return {
      groupId,
      state: group.state,
      protocolType: group.protocolType,
      protocol: group.protocolName,
      generationId: group.state === GroupState.DEAD ? null : group.generationId,
      leaderId: group.leaderId === '' ? null : group.leaderId,
      members,
      offsets: this.groupOffsets(groupId, members),
    };
  }

  private groupOffsets(groupId: string, members: GroupMemberInfo[]): GroupPartitionOffset[] {
    const owner = new Map<string, string>();
    for (const m of members) for (const a of m.assignment) for (const p of a.partitions) owner.set(`${a.topic}\u0000${p}`, m.memberId);
    const assignedTopics = [...new Set(members.flatMap((m) => m.assignment.map((a) => a.topic)))].filter((t) => this.logManager.hasTopic(t));
    const rows = new Map<string, GroupPartitionOffset>();
    for (const lag of [...this.logManager.groups.lag(groupId), ...this.logManager.groups.lag(groupId, assignedTopics)]) {
      const key = `${lag.topic}\u0000${lag.partition}`;
      rows.set(key, { ...lag, memberId: owner.get(key) ?? null });
    }
    return [...rows.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  }

  async resetOffsets(request: OffsetResetRequest): Promise<OffsetResetPlan> {
    const { groupId, topic } = request;
    const group = this.logManager.groups.describeGroup(groupId);
    if (group.members.length > 0) throw groupHasMembers(groupId, group.state, group.members.length);
    const count = this.logManager.partitionCount(topic);
    if (count === undefined) throw unknownTopic(topic, this.target);
    const committed = await this.logManager.groups.fetchOffsets({
      groupId,
      topics: [{ topic, partitions: partitionsToReset(topic, count, request.partitions) }],
    });
    const partitions = [];
    for (const { partition, offset } of committed.topics[0]!.partitions) {
      const bounds = this.logManager.describePartition(topic, partition);
      const atTime = request.to.kind === 'datetime' ? await this.logManager.offsetForTimestamp(topic, partition, request.to.timestampMs) : null;
      const newOffset = resetOffsetFor(request.to, bounds, atTime?.offset ?? null);
      partitions.push({ partition, currentOffset: offset, newOffset, logStartOffset: bounds.logStartOffset, highWatermark: bounds.highWatermark });
    }
    const dryRun = request.dryRun === true;
    if (!dryRun) await this.commit(groupId, topic, partitions);
    return { groupId, topic, dryRun, applied: !dryRun, partitions };
  }

  /** A commit outside group management (generation -1, no member), as Kafka's tool does for an empty group. */
  private async commit(groupId: string, topic: string, partitions: { partition: number; newOffset: number }[]): Promise<void> {
    const result = await this.logManager.groups.commitOffsets({
      groupId,
      generationId: -1,
      memberId: '',
      topics: [{ topic, partitions: partitions.map((p) => ({ partition: p.partition, offset: p.newOffset })) }],
    });
    const failed = result.topics.flatMap((t) => t.partitions).find((p) => p.errorCode !== null);
    if (failed !== undefined) {
      throw new ConcordatError(`committing the reset offset of '${topic}' partition ${failed.partition} failed: ${failed.errorCode}`, {
        code: failed.errorCode!,
        context: { groupId, topic, partition: failed.partition },
      });
    }
  }

  async close(): Promise<void> {
    if (this.owned) await this.logManager.close();
  }
}

function memberInfo(group: GroupDescription, member: GroupDescription['members'][number]): GroupMemberInfo {
  const assignment =
    group.protocolType === CONSUMER_PROTOCOL_TYPE && member.assignment.length > 0
      ? decodeAssignment(member.assignment).assignedPartitions.map((a) => ({ topic: a.topic, partitions: [...a.partitions].sort((x, y) => x - y) }))
      : [];
  return { memberId: member.memberId, groupInstanceId: member.groupInstanceId, clientId: member.clientId, clientHost: member.clientHost, assignment };
}

/**
 * Refuses a directory that is neither empty nor a log (every log that was
 * opened once has `.lock`): opening one would write a log's files into, say,
 * an app's data directory given as --log-dir.
 */
async function assertLogDirectory(dir: string): Promise<void> {
  const entries = await readdir(dir);
  if (entries.length === 0 || entries.includes('.lock')) return;
  throw new ConcordatError(
    `${dir} is not a log directory (it has no .lock; it holds ${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}), and nothing was written to it: ` +
      "name an app's data directory with --data <dir> (its log is <dir>/log), or a log directory with --log-dir <dir>",
    { code: ErrorCode.CONFIG_INVALID, context: { logDir: dir } },
  );
}

function inUse(dir: string, cause: ConcordatError): ConcordatError {
  return new ConcordatError(
    `${cause.message} (a running concordat broker or app). Commands on a log directory need it to themselves, for reads too: ` +
      'opening a partition recovers it, which must not race the process appending to it, and group members and commits live in that process. ' +
      'For a running concordat broker, run the same command with --bootstrap <its host:port>; for an app using the embedded log, stop the app first',
    { code: ErrorCode.LOG_DIR_LOCKED, cause, context: { logDir: dir } },
  );
}
