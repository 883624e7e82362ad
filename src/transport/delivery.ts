import { ConcordatError, describeError, ErrorCode } from '../errors.js';
import type { Logger } from '../observability/index.js';
import { BATCH_RECORDS, PER_PARTITION_CONCURRENCY, type ConsumerFailureEvent, type Delivery, type SubscribeOptions } from './transport.js';

/**
 * How a subscription hands records to its consumer, whichever of
 * `handler` and `batchHandler` it was given: in chunks of consecutive
 * records of one partition, `recordsMax` at most (1 for `handler`). Both
 * transports cut what one read returned into such chunks, commit a chunk's
 * offsets after `deliver` resolved and deliver a rejected chunk again from
 * its first record; so the one-at-a-time and the batch contract are one
 * code path.
 */
export interface ChunkDelivery {
  /** Most records in one chunk: 1 for `handler`, `batchRecordsMax` for `batchHandler`. */
  readonly recordsMax: number;
  /** Hands one chunk (1..recordsMax records of one partition, in offset order) to the consumer; rejects with what it rejected. */
  deliver(deliveries: readonly Delivery[]): Promise<void>;
  /**
   * Chunks of one partition of `topic` in flight at once
   * (`concurrency.perPartition`): 1 delivers them one after another, as
   * above; more hands them to a `KeyScheduler` (`key-scheduler.ts`).
   */
  perPartition(topic: string): number;
}

/**
 * Validates the handler options of a subscription.
 * @throws ConcordatError CONFIG_INVALID when not exactly one of `handler` and
 *   `batchHandler` is given, `batchRecordsMax` is not an integer in 1..10000,
 *   or a `concurrency.perPartition` is not an integer in 1..256
 */
export function chunkDelivery(options: SubscribeOptions): ChunkDelivery {
  const { handler, batchHandler, batchRecordsMax } = options;
  if ((handler === undefined) === (batchHandler === undefined)) {
    throw new ConcordatError(`invalid options: subscribe: give exactly one of handler and batchHandler (group '${options.groupId}')`, {
      code: ErrorCode.CONFIG_INVALID,
    });
  }
  if (batchRecordsMax !== undefined && (!Number.isInteger(batchRecordsMax) || batchRecordsMax < 1 || batchRecordsMax > BATCH_RECORDS.max)) {
    throw new ConcordatError(`invalid options: subscribe.batchRecordsMax: must be an integer in 1..${BATCH_RECORDS.max}, got ${String(batchRecordsMax)}`, {
      code: ErrorCode.CONFIG_INVALID,
    });
  }
  const perPartition = perPartitionOf(options);
  if (handler !== undefined) return { recordsMax: 1, deliver: (deliveries) => handler(deliveries[0]!), perPartition };
  return { recordsMax: batchRecordsMax ?? BATCH_RECORDS.default, deliver: batchHandler!, perPartition };
}

/** `concurrency.perPartition` as a function of the topic, validated. @throws ConcordatError CONFIG_INVALID */
function perPartitionOf(options: SubscribeOptions): (topic: string) => number {
  const given = options.concurrency?.perPartition;
  const check = (value: unknown, name: string): number => {
    if (Number.isInteger(value) && (value as number) >= 1 && (value as number) <= PER_PARTITION_CONCURRENCY.max) return value as number;
    throw new ConcordatError(
      `invalid options: subscribe.concurrency.perPartition${name}: must be an integer in 1..${PER_PARTITION_CONCURRENCY.max}, got ${String(value)}`,
      { code: ErrorCode.CONFIG_INVALID },
    );
  };
  if (given === undefined) return () => PER_PARTITION_CONCURRENCY.default;
  if (typeof given === 'number') {
    const all = check(given, '');
    return () => all;
  }
  if (typeof given !== 'object' || given === null) check(given, '');
  const byTopic = new Map(Object.entries(given).map(([topic, value]) => [topic, check(value, `['${topic}']`)]));
  return (topic) => byTopic.get(topic) ?? PER_PARTITION_CONCURRENCY.default;
}

/**
 * Hands `event` to the subscription's `onConsumerFailure`, if any. The
 * callback must not throw; what it throws is logged and ignored, so that a
 * faulty callback cannot stop the restart it is told about.
 */
export function reportConsumerFailure(options: SubscribeOptions, logger: Logger, event: ConsumerFailureEvent): void {
  try {
    options.onConsumerFailure?.(event);
  } catch (callbackError) {
    logger.warn({ err: describeError(callbackError) }, 'onConsumerFailure threw; ignored');
  }
}
