import { ConcordatError, ErrorCode } from '../errors.js';
import type { OffsetResetTarget } from './log-admin.js';

/** The offsets of one partition that a reset needs (and a lag: log/groups consumerLag). */
export interface PartitionBounds {
  logStartOffset: number;
  highWatermark: number;
}

/**
 * The offset a reset moves a partition to. `datetimeOffset` is the first
 * offset at or after the target time (null when no record is that recent:
 * then the high watermark, as Kafka's tool). `offset` targets are clamped to
 * [logStartOffset, highWatermark] like Kafka's tool does.
 */
export function resetOffsetFor(to: OffsetResetTarget, bounds: PartitionBounds, datetimeOffset: number | null): number {
  switch (to.kind) {
    case 'earliest':
      return bounds.logStartOffset;
    case 'latest':
      return bounds.highWatermark;
    case 'datetime':
      return datetimeOffset === null || datetimeOffset < 0
        ? bounds.highWatermark
        : Math.min(Math.max(datetimeOffset, bounds.logStartOffset), bounds.highWatermark);
    case 'offset':
      return Math.min(Math.max(to.offset, bounds.logStartOffset), bounds.highWatermark);
  }
}

/**
 * The refusal of a reset while the group has members.
 * @param howToStop what the operator stops (the app's consumers, or the clients listed by `groups describe`)
 */
export function groupHasMembers(groupId: string, state: string, members: number): ConcordatError {
  return new ConcordatError(
    `consumer group '${groupId}' has ${members} member(s) (state ${state}): offsets can be reset only while the group has no members, ` +
      `since a running member's next commit would overwrite the reset. Stop the group's consumers (see "concordat groups describe ${groupId}"), then run the reset again`,
    { code: ErrorCode.NON_EMPTY_GROUP, context: { groupId, state, members } },
  );
}

/**
 * The partitions a reset names, checked against the topic's partition count.
 * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION for one the topic lacks
 */
export function partitionsToReset(topic: string, count: number, wanted: readonly number[] | undefined): number[] {
  if (wanted === undefined) return Array.from({ length: count }, (_, i) => i);
  const bad = wanted.find((p) => !Number.isInteger(p) || p < 0 || p >= count);
  if (bad !== undefined) {
    throw new ConcordatError(`topic '${topic}' has no partition ${bad}: its partitions are 0..${count - 1}`, {
      code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      context: { topic, partition: bad },
    });
  }
  return [...new Set(wanted)].sort((a, b) => a - b);
}

/** The error for a topic that does not exist, as both implementations word it. */
export function unknownTopic(topic: string, target: string): ConcordatError {
  return new ConcordatError(`topic '${topic}' does not exist in ${target} (see "concordat topics list")`, {
    code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    context: { topic },
  });
}
