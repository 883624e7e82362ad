/**
 * Topic administration (Kafka's CreateTopics, CreatePartitions,
 * AlterConfigs, DeleteTopics on the log): checks, the registry write that
 * commits each change, the partitions' directories, and the recovery
 * points rewritten after it; one change at a time, in call order.
 */
import { compileTopicConfig, type CompiledLogManagerOptions, type TopicConfig } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import type { Logger } from '../observability/index.js';
import { fsyncDir } from './checkpoint-file.js';
import { logFs } from './file-system.js';
import type { GroupCoordinator } from './groups/coordinator.js';
import type { Topic, TopicSpec } from './log-manager-types.js';
import { PartitionLog } from './partition-log.js';
import type { PartitionLogContext } from './partition-log-types.js';
import type { RoundRobinPartitioner } from './partitioner.js';
import { topicNamesCollide, validateTopicName } from './topic-name.js';
import type { TopicRecord, TopicRegistry } from './topic-registry.js';

/** What topic administration uses of the log manager. */
export interface TopicAdminHost {
  readonly options: CompiledLogManagerOptions;
  /** The open topics by name; administration adds and removes entries. */
  readonly topics: Map<string, Topic>;
  readonly registry: TopicRegistry;
  readonly logger: Logger;
  readonly nullKeyPartitioner: RoundRobinPartitioner;
  /** The group coordinator (a deleted topic's committed offsets go). */
  groups(): GroupCoordinator;
  newTopic(record: TopicRecord): Topic;
  partitionContext(topic: Topic, partition: number): PartitionLogContext;
  /** @throws ConcordatError LOG_CLOSED once the log closes */
  checkOpen(): void;
  /** @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION */
  topicOrThrow(name: string): Topic;
  checkpointRecoveryPoints(): Promise<void>;
}

/** Creates, grows, reconfigures and deletes the log's topics, one change at a time. */
export class TopicAdmin {
  private chain: Promise<unknown> = Promise.resolve();

  /** Works on `host`'s topics. */
  constructor(private readonly host: TopicAdminHost) {}

  /** `LogManager.createTopic` (its doc there is the contract). */
  createTopic(name: string, spec: TopicSpec): Promise<void> {
    return this.serialized(async () => {
      if (this.host.topics.has(name)) {
        throw new ConcordatError(`Topic '${name}' already exists.`, { code: ErrorCode.TOPIC_ALREADY_EXISTS, context: { topic: name } });
      }
      await this.doCreateTopic(name, spec);
    });
  }

  /** `LogManager.ensureTopic` (its doc there is the contract). */
  ensureTopic(name: string, spec: TopicSpec): Promise<void> {
    return this.serialized(async () => {
      if (!this.host.topics.has(name)) await this.doCreateTopic(name, spec);
    });
  }

  private async doCreateTopic(name: string, spec: TopicSpec): Promise<void> {
    this.host.checkOpen();
    validateTopicName(name);
    const collision = [...this.host.topics.keys()].find((existing) => topicNamesCollide(existing, name));
    if (collision !== undefined) {
      throw new ConcordatError(`Topic '${name}' collides with existing topics: ${collision}`, {
        code: ErrorCode.INVALID_TOPIC_EXCEPTION,
        context: { topic: name },
      });
    }
    this.checkPartitionCount(name, spec.partitions);
    if (this.host.topics.size >= this.host.options.topicsMax) {
      throw new ConcordatError(`the log already has ${this.host.topics.size} topics (topicsMax); raise the log option topicsMax`, {
        code: ErrorCode.LIMIT_EXCEEDED,
        context: { limit: 'topicsMax' },
      });
    }
    const record: TopicRecord = { name, partitions: spec.partitions, config: this.topicConfig(name, spec.config), createdAtMs: Date.now() };
    if (spec.extraConfigs !== undefined && Object.keys(spec.extraConfigs).length > 0) record.extraConfigs = { ...spec.extraConfigs };
    await this.host.registry.put(record);
    const topic = this.host.newTopic(record);
    try {
      for (let partition = 0; partition < record.partitions; partition++) {
        const ctx = this.host.partitionContext(topic, partition);
        await logFs().rm(ctx.dir, { recursive: true, force: true });
        topic.partitions.push(await PartitionLog.create(ctx));
      }
      await fsyncDir(this.host.options.dataDir);
    } catch (error) {
      // Undo: the registry entry is the commit point, so it goes first; the directories follow (or go at the next open).
      await Promise.allSettled(topic.partitions.map((partitionLog) => partitionLog.delete()));
      await this.host.registry.remove(name).catch(() => {});
      throw error;
    }
    this.host.topics.set(name, topic);
    await this.recordTopicChange();
    this.host.logger.info({ topic: name, partitions: record.partitions }, 'topic created');
  }

  /**
   * Rewrites the recovery points after a topic was created or deleted, so
   * that the file never holds a deleted topic's points when a topic of the
   * same name is created again (they would name segments it does not have).
   * Best effort: a failure is logged, and the timer writes them again.
   */
  private async recordTopicChange(): Promise<void> {
    await this.host.checkpointRecoveryPoints().catch((error: unknown) => {
      if (!(error instanceof ConcordatError && error.code === ErrorCode.LOG_CLOSED)) {
        this.host.logger.warn({ err: error }, 'writing recovery points after a topic change failed; the next checkpoint retries');
      }
    });
  }

  private checkPartitionCount(name: string, partitions: number): void {
    const max = this.host.options.partitionsPerTopicMax;
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > max) {
      throw new ConcordatError(`Topic '${name}' cannot have ${partitions} partitions: the number must be 1..${max} (log option partitionsPerTopicMax)`, {
        code: ErrorCode.INVALID_PARTITIONS,
        context: { topic: name, partitions, limit: 'partitionsPerTopicMax' },
      });
    }
  }

  private topicConfig(name: string, overrides: Partial<TopicConfig> | undefined): TopicConfig {
    try {
      return compileTopicConfig(overrides, this.host.options.topicDefaults);
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      throw new ConcordatError(`Topic '${name}': ${error.message}`, {
        code: ErrorCode.INVALID_CONFIG,
        cause: error,
        context: { topic: name, ...error.context },
      });
    }
  }

  /** `LogManager.createPartitions` (its doc there is the contract). */
  createPartitions(name: string, partitions: number): Promise<void> {
    return this.serialized(async () => {
      this.host.checkOpen();
      const topic = this.host.topicOrThrow(name);
      const current = topic.partitions.length;
      if (Number.isInteger(partitions) && partitions <= current) {
        const message =
          partitions === current
            ? `Topic '${name}' already has ${current} partitions`
            : `Topic '${name}' has ${current} partitions, more than the ${partitions} asked for: partitions can only be added`;
        throw new ConcordatError(message, { code: ErrorCode.INVALID_PARTITIONS, context: { topic: name, partitions } });
      }
      this.checkPartitionCount(name, partitions);
      const record: TopicRecord = { ...topic.record, partitions };
      await this.host.registry.put(record);
      topic.record = record;
      for (let partition = current; partition < partitions; partition++) {
        const ctx = this.host.partitionContext(topic, partition);
        await logFs().rm(ctx.dir, { recursive: true, force: true });
        topic.partitions.push(await PartitionLog.create(ctx));
      }
      await fsyncDir(this.host.options.dataDir);
      await this.recordTopicChange();
      this.host.logger.info({ topic: name, from: current, partitions }, 'partitions added');
    });
  }

  /** `LogManager.alterTopicConfig` (its doc there is the contract). */
  alterTopicConfig(
    name: string,
    config: Partial<TopicConfig>,
    extraConfigs: Readonly<Record<string, string>> = {},
    options: { validateOnly?: boolean } = {},
  ): Promise<void> {
    return this.serialized(async () => {
      this.host.checkOpen();
      const topic = this.host.topicOrThrow(name);
      const next = this.topicConfig(name, config);
      const before = topic.record.config;
      if (before.dedupWindowMs > 0 !== next.dedupWindowMs > 0) {
        throw new ConcordatError(
          `Topic '${name}': the dedup window is ${before.dedupWindowMs > 0 ? 'on' : 'off'} and cannot be switched ${before.dedupWindowMs > 0 ? 'off' : 'on'} after creation; ` +
            'create a new topic with the window you want',
          { code: ErrorCode.INVALID_CONFIG, context: { topic: name } },
        );
      }
      if (options.validateOnly === true) return;
      const record: TopicRecord = { ...topic.record, config: next };
      delete record.extraConfigs;
      if (Object.keys(extraConfigs).length > 0) record.extraConfigs = { ...extraConfigs };
      await this.host.registry.put(record);
      topic.record = record;
      topic.dedup?.configure(next.dedupWindowMs, next.dedupWindowIdsMax);
      for (const partitionLog of topic.partitions) partitionLog.updateConfig(next);
      this.host.logger.info({ topic: name, config: next, extraConfigs }, 'topic config changed');
    });
  }

  /** `LogManager.deleteTopic` (its doc there is the contract). */
  deleteTopic(name: string): Promise<void> {
    return this.serialized(async () => {
      this.host.checkOpen();
      const topic = this.host.topicOrThrow(name);
      this.host.topics.delete(name);
      this.host.nullKeyPartitioner.forget(name);
      await this.host.registry.remove(name);
      await Promise.all(topic.partitions.map((partitionLog) => partitionLog.delete()));
      await fsyncDir(this.host.options.dataDir);
      await this.host.groups().removeTopicOffsets(name);
      await this.recordTopicChange();
      this.host.logger.info({ topic: name }, 'topic deleted');
    });
  }

  /** Runs topic creations and deletions one at a time. */
  private serialized<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.chain.then(operation, operation);
    this.chain = result.catch(() => {});
    return result;
  }

  /** Resolves when the topic change in flight (if any) settled. */
  idle(): Promise<unknown> {
    return this.chain.catch(() => {});
  }
}
