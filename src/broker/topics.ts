import type { CompiledBrokerOptions } from '../config/index.js';
import { ConcordatError } from '../errors.js';
import { isValidTopicName, type LogManager } from '../log/index.js';
import { KafkaError, kafkaErrorCodeOf } from './codec/error-codes.js';

/**
 * Topic lookups for request handlers, with auto-creation when the broker's
 * `autoCreateTopics` option (and, for Metadata v4+, the request) allows it.
 *
 * A lookup of an existing topic answers synchronously, so a Produce handler
 * that finds its topics appends before its first `await` and appends keep
 * the order of the requests. Concurrent auto-creations of one topic share
 * one `ensureTopic` call.
 */
export class TopicAccess {
  private readonly creating = new Map<string, Promise<number>>();

  constructor(
    private readonly logManager: LogManager,
    private readonly options: CompiledBrokerOptions,
  ) {}

  /** Partition count of an existing topic, or null. */
  partitions(name: string): number | null {
    return this.logManager.partitionCount(name) ?? null;
  }

  /**
   * Error code for a topic a request names: NONE when it exists (or was just
   * created), else UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION, ...
   * Synchronous (a number) when no creation is needed.
   */
  resolve(name: string, allowAutoCreate: boolean): number | Promise<number> {
    if (this.logManager.hasTopic(name)) return KafkaError.NONE;
    if (!isValidTopicName(name)) return KafkaError.INVALID_TOPIC_EXCEPTION;
    if (!allowAutoCreate || !this.options.autoCreateTopics) return KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
    let pending = this.creating.get(name);
    if (pending === undefined) {
      pending = this.create(name).finally(() => this.creating.delete(name));
      this.creating.set(name, pending);
    }
    return pending;
  }

  private async create(name: string): Promise<number> {
    try {
      await this.logManager.ensureTopic(name, { partitions: this.options.defaultPartitions });
      return KafkaError.NONE;
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return kafkaErrorCodeOf(error);
    }
  }
}
