/**
 * The names a dead letter travels under: the topic it is sent to
 * (`<topic>.dlq`), the headers it carries there besides the original
 * record's, and the headers a replayed message carries. Readers of a `.dlq`
 * topic (operators' tools, another service) and the dispatcher, which skips
 * the replays meant for another consumer group, agree on them through this
 * file.
 *
 * @module
 */

/** Suffix of the dead-letter topic of a topic: a dead letter of `orders` goes to `orders.dlq`. */
export const DEAD_LETTER_SUFFIX = '.dlq';

/** Header names a dead letter carries besides the original record's headers. */
export const DeadLetterHeader = {
  ERROR: 'concordat_dlq_error',
  ERROR_CODE: 'concordat_dlq_error_code',
  ATTEMPTS: 'concordat_dlq_attempts',
  HANDLER: 'concordat_dlq_handler',
  CONSUMER: 'concordat_dlq_consumer',
  TOPIC: 'concordat_dlq_topic',
  PARTITION: 'concordat_dlq_partition',
  OFFSET: 'concordat_dlq_offset',
  FAILED_AT: 'concordat_dlq_failed_at',
  /** ID of the row in `concordat.dead_letter` (what `concordat dlq replay` takes). */
  ID: 'concordat_dlq_id',
  /** The record's `ce_id`, escaped and truncated, when it could not be used and the dead letter got a new ID. */
  ORIGINAL_ID: 'concordat_dlq_original_id',
  /** Comma-separated headers (and `key`) whose NUL characters were written as `\u0000` so they could be stored. */
  SANITIZED: 'concordat_dlq_sanitized',
  /**
   * For a payload its typed topic's schema refused (error code VALIDATION_FAILED):
   * the issues as a JSON array of `{ path, message }` (`path` like `items.0.qty`),
   * at most {@link ISSUES_HEADER_MAX} of them.
   */
  ISSUES: 'concordat_dlq_issues',
} as const;

/** Most schema issues listed in a dead letter's {@link DeadLetterHeader.ISSUES} header (each message cut to 300 characters). */
export const ISSUES_HEADER_MAX = 20;

/** Header a replayed message carries: the dead letter it replays. */
export const REPLAY_OF_HEADER = 'concordat_replay_of';

/**
 * Header a replayed message carries: the consumer group that dead-lettered
 * it, the only one meant to handle it. A replay goes to the original topic,
 * which every group of the topic reads; the others skip it (and commit its
 * offset) without running a handler or writing their inbox.
 */
export const REPLAY_FOR_HEADER = 'concordat_replay_for';
