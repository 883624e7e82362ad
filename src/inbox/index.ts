export { cleanupDeadLetters, cleanupInbox, InboxCleaner, type InboxCleanerOptions } from './cleanup.js';
export {
  listDeadLetters,
  markDeadLettersReplayed,
  processedDeadLetters,
  recordDeadLetter,
  type ReplayOptions,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterInput,
} from './dead-letters.js';
export { inboxInsertManySql, inboxInsertSql, isInInbox, recordInInbox, type InboxClaimRecord, type InboxClaimRow } from './inbox.js';
export { human, recordDedupWindow, resolveDedupWindow, type DedupWindow } from './window.js';
