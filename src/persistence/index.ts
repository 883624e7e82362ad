export { assertPreparedTransactionsEnabled, openDatabase, redact, type Database } from './database.js';
export { ensureDatabase, freePort, startEmbeddedPostgres, type EmbeddedPostgresOptions, type RunningPostgres } from './embedded-postgres.js';
export { BranchEntity, FenceEntity, GlobalTransactionEntity, InboxEntryEntity, OutboxMessageEntity, concordatEntities } from './entities/index.js';
export { concordatMigrations } from './migrations/index.js';
export { runTransaction, setTransactionState, transactionRolledBack } from './transaction.js';
