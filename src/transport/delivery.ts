import { compileSubscribeHandlerOptions } from '../config/index.js';
import { describeError } from '../errors.js';
import type { Logger } from '../observability/index.js';
import type { ConsumerFailureEvent, Delivery, SubscribeOptions } from './transport.js';

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
 * Validates the handler options of a subscription (`compileSubscribeHandlerOptions`,
 * `config/subscribe-options.ts`) and says how its records are handed over.
 * @throws ConcordatError CONFIG_INVALID when not exactly one of `handler` and
 *   `batchHandler` is given, `batchRecordsMax` is not an integer in 1..10000,
 *   or a `concurrency.perPartition` is not an integer in 1..256
 */
export function chunkDelivery(options: SubscribeOptions): ChunkDelivery {
  const { recordsMax, perPartition } = compileSubscribeHandlerOptions(options);
  const { handler, batchHandler } = options;
  if (handler !== undefined) return { recordsMax, deliver: (deliveries) => handler(deliveries[0]!), perPartition };
  return { recordsMax, deliver: batchHandler!, perPartition };
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
