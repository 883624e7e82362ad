import { AssignerProtocol, Kafka, logLevel, type Admin, type ConfigResourceTypes, type KafkaConfig } from 'kafkajs';
import { ConcordatError, ErrorCode, causeChain, describeError, errorCodeOfKafka, kafkaErrorOf } from '../errors.js';
import type {
  CreateTopicRequest,
  GroupInfo,
  GroupMemberInfo,
  GroupPartitionOffset,
  GroupSummary,
  LogAdmin,
  OffsetResetPartition,
  OffsetResetPlan,
  OffsetResetRequest,
  TopicInfo,
  TopicSummary,
} from './log-admin.js';
import { consumerLag } from '../log/index.js';
import { groupHasMembers, partitionsToReset, resetOffsetFor, unknownTopic, type PartitionBounds } from './offsets.js';

/**
 * DescribeConfigs' resource type of a topic (Kafka's ConfigResource.Type.TOPIC).
 * kafkajs exports ConfigResourceTypes from its CommonJS entry only, not under
 * Node's ESM named-export detection.
 */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

/** What {@link KafkaLogAdmin.connect} is given. */
export interface KafkaLogAdminOptions {
  /** `host:port` of one or more brokers (`concordat broker` or Apache Kafka). */
  brokers: readonly string[];
  /** kafkajs settings besides the brokers: `ssl`, `sasl`, timeouts. @default 3 s connection timeout, 2 retries */
  kafka?: Omit<KafkaConfig, 'brokers'>;
}

/**
 * {@link LogAdmin} over a Kafka-compatible broker through kafkajs 2.2's admin
 * client: Metadata, ListOffsets, DescribeConfigs, CreateTopics,
 * DeleteTopics, ListGroups, DescribeGroups and OffsetFetch. A reset commits
 * as kafkajs's `admin.setOffsets` does (a consumer joins the group alone,
 * seeks, which commits, and leaves), after this class checked with
 * DescribeGroups that the group has no members (and again, as setOffsets
 * does, once its consumer subscribed); a consumer of the group starting
 * during the reset joins alongside and is rebalanced when this one leaves.
 * Sizes on disk are null: kafkajs has no DescribeLogDirs.
 */
export class KafkaLogAdmin implements LogAdmin {
  private constructor(
    private readonly kafka: Kafka,
    private readonly admin: Admin,
    readonly target: string,
  ) {}

  /**
   * Connects to the brokers.
   * @throws ConcordatError COORDINATOR_NOT_AVAILABLE when none answers (the message names them)
   */
  static async connect(options: KafkaLogAdminOptions): Promise<KafkaLogAdmin> {
    const kafka = new Kafka({
      clientId: 'concordat-admin',
      logLevel: logLevel.NOTHING,
      connectionTimeout: 3000,
      retry: { retries: 2 },
      ...options.kafka,
      brokers: [...options.brokers],
    });
    const target = `broker ${options.brokers.join(',')}`;
    const admin = kafka.admin();
    try {
      await admin.connect();
    } catch (error) {
      throw unreachable(target, error);
    }
    return new KafkaLogAdmin(kafka, admin, target);
  }

  async listTopics(): Promise<TopicSummary[]> {
    const { topics } = await this.call('listing topics', () => this.admin.fetchTopicMetadata());
    return topics.map((t) => ({ name: t.name, partitions: t.partitions.length })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async describeTopic(name: string): Promise<TopicInfo> {
    await this.requireTopic(name);
    const offsets = await this.call(`reading the offsets of '${name}'`, () => this.admin.fetchTopicOffsets(name));
    const described = await this.call(`reading the configs of '${name}'`, () =>
      this.admin.describeConfigs({ resources: [{ type: TOPIC_RESOURCE, name }], includeSynonyms: false }),
    );
    const partitions = offsets
      .map((o) => ({ partition: o.partition, logStartOffset: Number(o.low), highWatermark: Number(o.high), sizeBytes: null, segments: null }))
      .sort((a, b) => a.partition - b.partition);
    const configs = (described.resources[0]?.configEntries ?? [])
      .map((c) => ({ name: c.configName, value: c.isSensitive ? null : c.configValue, isDefault: c.isDefault }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { name, partitions, sizeBytes: null, configs };
  }

  async createTopic(request: CreateTopicRequest): Promise<void> {
    const configEntries = Object.entries(request.configs ?? {}).map(([name, value]) => ({ name, value }));
    const created = await this.call(`creating '${request.name}'`, () =>
      this.admin.createTopics({ topics: [{ topic: request.name, numPartitions: request.partitions, configEntries }], waitForLeaders: true }),
    );
    if (!created) {
      throw new ConcordatError(`topic '${request.name}' already exists in ${this.target}`, {
        code: ErrorCode.TOPIC_ALREADY_EXISTS,
        context: { topic: request.name },
      });
    }
  }

  async deleteTopic(name: string): Promise<void> {
    await this.requireTopic(name);
    await this.call(`deleting '${name}'`, () => this.admin.deleteTopics({ topics: [name] }));
  }

  async listGroups(): Promise<GroupSummary[]> {
    const { groups } = await this.call('listing groups', () => this.admin.listGroups());
    if (groups.length === 0) return [];
    // ListGroups has no state before v4 (kafkajs sends v2): DescribeGroups says it.
    const { groups: described } = await this.call('describing groups', () => this.admin.describeGroups(groups.map((g) => g.groupId)));
    const states = new Map(described.map((g) => [g.groupId, g.state as string]));
    return groups
      .map((g) => ({ groupId: g.groupId, state: states.get(g.groupId) ?? 'Unknown', protocolType: g.protocolType }))
      .sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0));
  }

  async describeGroup(groupId: string): Promise<GroupInfo> {
    const { groups } = await this.call(`describing group '${groupId}'`, () => this.admin.describeGroups([groupId]));
    const group = groups[0];
    const members: GroupMemberInfo[] = (group?.members ?? []).map((m) => ({
      memberId: m.memberId,
      groupInstanceId: null,
      clientId: m.clientId,
      clientHost: m.clientHost,
      assignment: group?.protocolType === 'consumer' ? decodeMemberAssignment(m.memberAssignment) : [],
    }));
    return {
      groupId,
      state: group?.state ?? 'Dead',
      protocolType: group?.protocolType ?? '',
      protocol: group?.protocol ?? '',
      generationId: null,
      leaderId: null,
      members,
      offsets: await this.groupOffsets(groupId, members),
    };
  }

  private async groupOffsets(groupId: string, members: GroupMemberInfo[]): Promise<GroupPartitionOffset[]> {
    const owner = new Map<string, string>();
    for (const m of members) for (const a of m.assignment) for (const p of a.partitions) owner.set(`${a.topic}\u0000${p}`, m.memberId);
    // No topics: OffsetFetch v3+ with a null array, every partition the group committed.
    const committed = await this.call(`reading the offsets of group '${groupId}'`, () => this.admin.fetchOffsets({ groupId }));
    const committedAt = new Map<string, number>();
    for (const t of committed) for (const p of t.partitions) if (Number(p.offset) >= 0) committedAt.set(`${t.topic}\u0000${p.partition}`, Number(p.offset));
    const topics = [...new Set([...committedAt.keys(), ...owner.keys()].map((key) => key.split('\u0000')[0]!))].sort();
    const existing = new Set(await this.call('listing topics', () => this.admin.listTopics()));
    const rows: GroupPartitionOffset[] = [];
    for (const topic of topics.filter((t) => existing.has(t))) {
      for (const [partition, bounds] of await this.bounds(topic)) {
        const key = `${topic}\u0000${partition}`;
        if (!committedAt.has(key) && !owner.has(key)) continue;
        const committedOffset = committedAt.get(key) ?? -1;
        rows.push({ topic, partition, committedOffset, ...bounds, lag: consumerLag(committedOffset, bounds), memberId: owner.get(key) ?? null });
      }
    }
    return rows;
  }

  async resetOffsets(request: OffsetResetRequest): Promise<OffsetResetPlan> {
    const { groupId, topic } = request;
    const { groups } = await this.call(`describing group '${groupId}'`, () => this.admin.describeGroups([groupId]));
    const group = groups[0];
    if (group !== undefined && group.members.length > 0) throw groupHasMembers(groupId, group.state, group.members.length);
    await this.requireTopic(topic);
    const bounds = await this.bounds(topic);
    const wanted = partitionsToReset(topic, bounds.size, request.partitions);
    const committed = await this.call(`reading the offsets of group '${groupId}'`, () => this.admin.fetchOffsets({ groupId, topics: [topic] }));
    const current = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
    const atTime =
      request.to.kind === 'datetime'
        ? new Map(
            (
              await this.call(`finding offsets of '${topic}' by time`, () =>
                this.admin.fetchTopicOffsetsByTimestamp(topic, (request.to as { timestampMs: number }).timestampMs),
              )
            ).map((o) => [o.partition, Number(o.offset)]),
          )
        : new Map<number, number>();
    const partitions: OffsetResetPartition[] = wanted.map((partition) => {
      const b = bounds.get(partition)!;
      const currentOffset = current.get(partition) ?? -1;
      return {
        partition,
        currentOffset: currentOffset < 0 ? -1 : currentOffset,
        newOffset: resetOffsetFor(request.to, b, atTime.get(partition) ?? null),
        ...b,
      };
    });
    const dryRun = request.dryRun === true;
    if (!dryRun) {
      await this.call(`committing the reset offsets of group '${groupId}'`, () => this.commitAsMember(groupId, topic, partitions));
    }
    return { groupId, topic, dryRun, applied: !dryRun, partitions };
  }

  /**
   * What kafkajs's `admin.setOffsets` does (join the group alone, seek each
   * partition, which commits at once, then leave), with a short fetch wait:
   * setOffsets' consumer sleeps its default 5 s maxWaitTime before it notices
   * it may stop, since all its partitions are paused.
   */
  private async commitAsMember(groupId: string, topic: string, partitions: readonly OffsetResetPartition[]): Promise<void> {
    const consumer = this.kafka.consumer({ groupId, maxWaitTimeInMs: 100, retry: { retries: 2 } });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const described = await consumer.describeGroup();
      if (described.members.length > 0) throw groupHasMembers(groupId, described.state, described.members.length);
      await new Promise<void>((resolve, reject) => {
        consumer.on(consumer.events.FETCH, () => resolve());
        consumer.on(consumer.events.CRASH, (event) => reject(event.payload.error));
        consumer.run({ eachBatchAutoResolve: false, eachBatch: async () => {} }).catch(reject);
        consumer.pause([{ topic }]);
        for (const p of partitions) consumer.seek({ topic, partition: p.partition, offset: String(p.newOffset) });
      });
    } finally {
      await consumer.disconnect();
    }
  }

  async close(): Promise<void> {
    await this.admin.disconnect();
  }

  private async bounds(topic: string): Promise<Map<number, PartitionBounds>> {
    const offsets = await this.call(`reading the offsets of '${topic}'`, () => this.admin.fetchTopicOffsets(topic));
    return new Map(
      offsets.sort((a, b) => a.partition - b.partition).map((o) => [o.partition, { logStartOffset: Number(o.low), highWatermark: Number(o.high) }]),
    );
  }

  /** Metadata for an unknown topic is retried by kafkajs for seconds; a listing answers at once. */
  private async requireTopic(name: string): Promise<void> {
    const topics = await this.call('listing topics', () => this.admin.listTopics());
    if (!topics.includes(name)) throw unknownTopic(name, this.target);
  }

  /** Runs a kafkajs call; its failure becomes a ConcordatError saying what was being done, on which broker. */
  private async call<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof ConcordatError) throw error;
      throw fromKafkajs(`${what} on ${this.target}`, error);
    }
  }
}

function decodeMemberAssignment(bytes: Buffer): GroupMemberInfo['assignment'] {
  if (bytes.length === 0) return [];
  const decoded = AssignerProtocol.MemberAssignment.decode(bytes);
  if (decoded === null) return [];
  return Object.entries(decoded.assignment)
    .map(([topic, partitions]) => ({ topic, partitions: [...partitions].sort((a, b) => a - b) }))
    .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
}

/** The Concordat code of the Kafka error kafkajs reports (of a protocol error, or of the first in an aggregate), if it has one (see errorCodeOfKafka). */
function codeOf(error: unknown): ErrorCode | undefined {
  for (const current of causeChain(error)) {
    const code = errorCodeOfKafka(kafkaErrorOf(current));
    if (code !== undefined) return code;
    const e = current as { errors?: unknown[] };
    if (Array.isArray(e.errors))
      for (const inner of e.errors) {
        const code = codeOf(inner);
        if (code !== undefined) return code;
      }
  }
  return undefined;
}

function fromKafkajs(what: string, error: unknown): ConcordatError {
  const code = codeOf(error);
  if (code === undefined && isConnectionFailure(error)) return unreachable(what, error);
  const details = Array.isArray((error as { errors?: unknown[] }).errors)
    ? (error as { errors: unknown[] }).errors.map((e) => describeError(e)).join('; ')
    : describeError(error);
  return new ConcordatError(`${what} failed: ${details}`, { code: code ?? ErrorCode.ADMIN_REQUEST_FAILED, cause: error });
}

function isConnectionFailure(error: unknown): boolean {
  const name = (error as { name?: unknown })?.name;
  return (
    name === 'KafkaJSConnectionError' || name === 'KafkaJSNumberOfRetriesExceeded' || name === 'KafkaJSBrokerNotFound' || name === 'KafkaJSRequestTimeoutError'
  );
}

function unreachable(where: string, error: unknown): ConcordatError {
  return new ConcordatError(`cannot reach ${where}: ${describeError(error)}; is the broker running, and is --bootstrap host:port right?`, {
    code: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    cause: error,
  });
}
