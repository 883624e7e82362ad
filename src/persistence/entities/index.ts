import { BranchEntity } from './branch.entity.js';
import { FenceEntity } from './fence.entity.js';
import { GlobalTransactionEntity } from './global-transaction.entity.js';
import { InboxEntryEntity } from './inbox-entry.entity.js';
import { OutboxMessageEntity } from './outbox-message.entity.js';

export { BranchEntity, FenceEntity, GlobalTransactionEntity, InboxEntryEntity, OutboxMessageEntity };

/** Concordat's own entities, registered on every DataSource it creates. */
export const concordatEntities = [OutboxMessageEntity, InboxEntryEntity, GlobalTransactionEntity, BranchEntity, FenceEntity];
