/**
 * Parts of an answer that several APIs build the same way: one answer for
 * every partition of a request (what Kafka's `getErrorResponse` does for
 * the per-partition APIs), the topics a client may not touch split off and
 * refused, and the single error code of a call to the transaction
 * coordinator.
 *
 * @module
 */

import { type AclOperation, topicAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, transactionErrorCodeOf } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';

/** A request's topic: its name and its partitions, in whatever shape the API decodes them. */
interface RequestTopic<P> {
  name: string;
  partitions: readonly P[];
}

/** `topics` in request order, each partition answered by `answer` (given the partition and its topic's name), in order. */
export function answerEachPartition<P, A>(topics: readonly RequestTopic<P>[], answer: (partition: P, topic: string) => A): { name: string; partitions: A[] }[] {
  return topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => answer(p, t.name)) }));
}

/**
 * `topics` split by whether `context` may do `operation` on each: the
 * allowed ones in request order, and the refused ones answered
 * TOPIC_AUTHORIZATION_FAILED on every partition (OffsetCommit and
 * TxnOffsetCommit go on with the allowed ones and append the refused).
 */
export function splitByTopicAuthorization<T extends RequestTopic<{ partitionIndex: number }>>(
  context: RequestContext,
  operation: AclOperation,
  topics: readonly T[],
): { allowed: T[]; refused: { name: string; partitions: { partitionIndex: number; errorCode: number }[] }[] } {
  const allowed: T[] = [];
  const denied: T[] = [];
  for (const topic of topics) (topicAuthorized(context, operation, topic.name) ? allowed : denied).push(topic);
  const refused = answerEachPartition(denied, (p) => ({ partitionIndex: p.partitionIndex, errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED }));
  return { allowed, refused };
}

/**
 * The error code of a transaction-coordinator call whose answer is only
 * that code (AddOffsetsToTxn, EndTxn): NONE when `call` resolves, else the
 * ConcordatError's code as {@link transactionErrorCodeOf} maps it with
 * `producerFencedSupported`. Any other error is rethrown.
 */
export async function transactionCallErrorCode(call: () => Promise<unknown>, producerFencedSupported: boolean): Promise<number> {
  try {
    await call();
    return KafkaError.NONE;
  } catch (error) {
    if (!(error instanceof ConcordatError)) throw error;
    return transactionErrorCodeOf(error, producerFencedSupported);
  }
}
