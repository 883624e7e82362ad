import type { Logger } from '../observability/index.js';
import { EmbeddedLogAdmin } from './embedded.js';
import { KafkaLogAdmin, type KafkaLogAdminOptions } from './kafka.js';
import type { LogAdmin } from './log-admin.js';

/** Where a {@link LogAdmin} works: a log directory, or brokers. */
export type LogAdminTarget = { logDir: string; logger?: Logger } | { bootstrap: readonly string[]; kafka?: KafkaLogAdminOptions['kafka'] };

/**
 * Opens the admin for `target`: {@link EmbeddedLogAdmin.open} for a log
 * directory (refused with LOG_DIR_LOCKED while a broker or app has it open),
 * {@link KafkaLogAdmin.connect} for brokers. Close it when done.
 */
export async function openLogAdmin(target: LogAdminTarget): Promise<LogAdmin> {
  if ('bootstrap' in target) return KafkaLogAdmin.connect({ brokers: target.bootstrap, ...(target.kafka !== undefined && { kafka: target.kafka }) });
  return EmbeddedLogAdmin.open({ logDir: target.logDir, ...(target.logger !== undefined && { logger: target.logger }) });
}
