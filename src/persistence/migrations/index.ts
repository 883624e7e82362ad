import { ConcordatInitial1795200000000 } from './0001-initial.js';
import { ConcordatOutboxInbox1795200000200 } from './0002-outbox-inbox.js';
import { ConcordatGlobalTransactions1795200001000 } from './0010-global-transactions.js';
import { ConcordatInboxConsumerProcessedAt1795200002000 } from './0020-inbox-consumer-processed-at.js';
import { ConcordatInboxWindow1795200002100 } from './0021-inbox-window.js';
import { ConcordatDeadLetterReplayed1795200002200 } from './0022-dead-letter-replayed.js';
import { ConcordatFenceHeuristic1795200002300 } from './0023-fence-heuristic.js';
import { ConcordatDatabaseIdentity1795200002400 } from './0024-database-identity.js';
import { ConcordatOutboxScheduled1795200003000 } from './0030-outbox-scheduled.js';
import { ConcordatDeadLetterReplayedBy1795200003100 } from './0031-dead-letter-replayed-by.js';

/** Concordat's migrations, oldest first. */
export const concordatMigrations = [
  ConcordatInitial1795200000000,
  ConcordatOutboxInbox1795200000200,
  ConcordatGlobalTransactions1795200001000,
  ConcordatInboxConsumerProcessedAt1795200002000,
  ConcordatInboxWindow1795200002100,
  ConcordatDeadLetterReplayed1795200002200,
  ConcordatFenceHeuristic1795200002300,
  ConcordatDatabaseIdentity1795200002400,
  ConcordatOutboxScheduled1795200003000,
  ConcordatDeadLetterReplayedBy1795200003100,
];
