export { cleanupDeadLetters, cleanupInbox, InboxCleaner, type InboxCleanerOptions } from './cleanup.js';
export {
  DEAD_LETTER_SUFFIX,
  DeadLetterHeader,
  ISSUES_HEADER_MAX,
  REPLAY_FOR_HEADER,
  REPLAY_OF_HEADER,
  deadLetterInput,
  listDeadLetters,
  markDeadLettersReplayed,
  processedDeadLetters,
  recordDeadLetter,
  replayDeadLetters,
  sendDeadLetter,
  type DeadLetter,
  type DeadLetterCause,
  type DeadLetterFilter,
  type DeadLetterInput,
  type ReplayOptions,
} from './dead-letters/index.js';
export { InboxClaim, inboxClaimCheckingDeadLettersSql, inboxClaimSql, isInInbox, readInboxClaim, recordInInbox, type InboxClaimRecord } from './inbox.js';
export { human, recordDedupWindow, resolveDedupWindow, type DedupWindow } from './window.js';
