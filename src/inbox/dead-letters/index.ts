/**
 * Dead letters, in one place: the names they travel under (`format.ts`),
 * how one is built from a failed record (`record.ts`), their store
 * `concordat.dead_letter` (`store.ts`), and sending and replaying them
 * through the outbox (`send.ts`). The dispatcher only decides when a message
 * is dead-lettered.
 *
 * @module
 */

export { DEAD_LETTER_SUFFIX, DeadLetterHeader, ISSUES_HEADER_MAX, REPLAY_FOR_HEADER, REPLAY_OF_HEADER } from './format.js';
export { deadLetterInput, deadLetterRecord, storableRecord, withoutNul, type DeadLetterCause, type StorableRecord } from './record.js';
export { replayDeadLetters, sendDeadLetter } from './send.js';
export {
  listDeadLetters,
  markDeadLettersReplayed,
  processedDeadLetters,
  recordDeadLetter,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterInput,
  type ReplayOptions,
} from './store.js';
