/**
 * The log cleaner: compaction of topics with `cleanup.policy` `compact` or
 * `compact,delete` (log-cleaner.ts), its bounded offset map (offset-map.ts),
 * the filtering of one batch (batch-filter.ts), the cleaned segment's files
 * (cleaned-segment.ts) and their crash-safe swap (swap.ts).
 *
 * @module
 */
export { CLEANER_CHECKPOINT_FILE, readCleanerPoint, writeCleanerPoint, type CleanerPoint } from './cleaner-point.js';
export { LogCleaner, type CleanResult, type LogCleanerOptions } from './log-cleaner.js';
export { OffsetMap, OFFSET_MAP_SLOT_BYTES, OFFSET_MAP_LOAD_FACTOR } from './offset-map.js';
export { filterBatch, type FilteredBatch, type RecordFilter } from './batch-filter.js';
export { commitSwap, recoverSwap, SWAP_RECORD_FILE, CLEANED_SUFFIX, type SwapRecord } from './swap.js';
