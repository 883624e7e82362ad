/** The dispatcher: runs a consumer group's handlers on delivered records with exactly-once effect. */
export { Dispatcher } from './dispatcher.js';
export { GUARDED_LOCK_TIMEOUT_MS, type DispatcherDeps } from './options.js';
export {
  compileDispatcherOptions,
  DISPATCH_BATCH_RECORDS_DEFAULT,
  DISPATCH_CONCURRENT_TRANSACTIONS_DEFAULT,
  type DispatcherOptions,
} from '../../config/index.js';
export type { DispatchStats } from './stats.js';
