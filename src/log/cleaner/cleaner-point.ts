import { join } from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../checkpoint-file.js';

/** The cleaner point of a partition: `<partition dir>/cleaner-offset.checkpoint`. */
export const CLEANER_CHECKPOINT_FILE = 'cleaner-offset.checkpoint';
const KIND = 'cleaner-offset';

/**
 * Where the log cleaner stands in one partition (Kafka's
 * cleaner-offset-checkpoint, kept per partition here), a checkpoint file
 * (checkpoint-file.ts) with the JSON body `{ "offset": N, "compactedBelow": M }`:
 * - `offset`, the cleaner point: records below it were cleaned (the clean
 *   section); a stale value only makes the cleaner redo work;
 * - `compactedBelow`: every segment the cleaner may have rewritten ends at
 *   or below it. It is written, durably, before a pass swaps its first
 *   segment, and only grows: opening a partition allows offset gaps in
 *   exactly those segments (segment.ts), and keeps finding a gap anywhere
 *   else as damage.
 */
export interface CleanerPoint {
  offset: number;
  compactedBelow: number;
}

/** The partition's cleaner point, or null when the cleaner never ran on it. @throws ConcordatError STORAGE_CORRUPT */
export async function readCleanerPoint(dir: string): Promise<CleanerPoint | null> {
  const body = (await readCheckpoint(join(dir, CLEANER_CHECKPOINT_FILE), KIND)) as Partial<CleanerPoint> | null;
  if (body === null || typeof body.offset !== 'number') return null;
  return { offset: body.offset, compactedBelow: typeof body.compactedBelow === 'number' ? body.compactedBelow : body.offset };
}

/** Replaces the partition's cleaner point, durably. */
export async function writeCleanerPoint(dir: string, point: CleanerPoint): Promise<void> {
  await writeCheckpoint(join(dir, CLEANER_CHECKPOINT_FILE), KIND, point);
}
