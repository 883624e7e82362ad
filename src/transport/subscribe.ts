/**
 * The steps of `Transport.subscribe` that do not depend on the transport:
 * refusing a topic that does not exist, and starting a subscription so that
 * a failed start leaves nothing behind.
 */

import { ConcordatError, ErrorCode } from '../errors.js';

/**
 * Refuses a subscription to a topic that does not exist (nothing would ever
 * be delivered, and a typo would go unnoticed).
 * @param exists whether the log or the brokers have the topic
 * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION naming the first topic that does not exist
 */
export function requireTopics(topics: readonly string[], exists: (topic: string) => boolean): void {
  for (const topic of topics) {
    if (!exists(topic)) {
      throw new ConcordatError(`cannot subscribe to topic '${topic}': it does not exist; create it with ensureTopics first`, {
        code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        context: { topic },
      });
    }
  }
}

/**
 * Adds `subscription` to the transport's `live` set, then starts it; if the
 * start fails it is closed (which removes it from `live`, through the
 * callback each transport gives its subscriptions) and the error is thrown.
 * @returns the started subscription
 */
export async function startSubscription<S extends { start(): Promise<void>; close(): Promise<void> }>(live: Set<S>, subscription: S): Promise<S> {
  live.add(subscription);
  try {
    await subscription.start();
  } catch (error) {
    await subscription.close();
    throw error;
  }
  return subscription;
}
