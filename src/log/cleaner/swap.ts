import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, readCheckpoint, removeCheckpoint, writeCheckpoint } from '../checkpoint-file.js';
import { logFs } from '../file-system.js';
import { segmentFileName, type SegmentFileExtension } from '../segment.js';

/** Suffix of a cleaned segment's files while they are written, before the swap commits them. */
export const CLEANED_SUFFIX = '.cleaned';
/** The swap record in a partition directory: while it exists, a committed swap may be unfinished. */
export const SWAP_RECORD_FILE = 'cleaner-swap.checkpoint';
const SWAP_KIND = 'cleaner-swap';
/** Index files first, the `.log` last: once the `.log` is in place the segment is whole. */
const EXTENSIONS: readonly SegmentFileExtension[] = ['.index', '.timeindex', '.log'];

/** A committed swap: the cleaned segment takes base offset `base` and replaces the segments with these base offsets. */
export interface SwapRecord {
  base: number;
  replaced: number[];
}

/** Path of a cleaned segment's file while it is written (`<20 digits><extension>.cleaned`). */
export function cleanedPath(dir: string, base: number, extension: SegmentFileExtension): string {
  return join(dir, segmentFileName(base, extension) + CLEANED_SUFFIX);
}

/**
 * Replaces segments by their cleaned version on disk, crash-safely (the
 * role of Kafka's `.cleaned` → `.swap` → rename sequence).
 *
 * Before: the cleaned segment's three files `<base>.{log,index,timeindex}.cleaned`
 * were written and fsynced. Then:
 * 1. fsync the directory: the `.cleaned` entries are durable;
 * 2. write the swap record `cleaner-swap.checkpoint` ({ base, replaced })
 *    atomically (temp file, fsync, rename, directory fsync): **the commit
 *    point**. Before it, a crash leaves the old segments and stray
 *    `.cleaned` files, which {@link recoverSwap} removes; after it, a crash
 *    leaves a record that {@link recoverSwap} carries out;
 * 3. remove the replaced segments other than `base` (`.log` first);
 * 4. rename `<base>.index.cleaned`, `.timeindex.cleaned`, then `.log.cleaned`
 *    over the old `<base>` files (rename(2) replaces atomically);
 * 5. fsync the directory, remove the record (and fsync again).
 * Steps 3–5 are idempotent (a missing file is already done), so recovery
 * simply runs them again.
 *
 * The caller must have closed the replaced segments' descriptors (the file
 * pool caches them by path) and kept readers away while this runs.
 * @throws the file error of any step; after step 2 the caller must not use the partition until {@link recoverSwap} has run
 */
export async function commitSwap(dir: string, record: SwapRecord): Promise<void> {
  await fsyncDir(dir);
  await writeCheckpoint(join(dir, SWAP_RECORD_FILE), SWAP_KIND, record);
  await finishSwap(dir, record);
}

/**
 * Completes a swap whose record is in `dir` and removes every leftover
 * `.cleaned` file (a clean that crashed before committing). Runs when a
 * partition opens, before its segments are listed. Returns the record it
 * carried out, or null.
 * @throws ConcordatError STORAGE_CORRUPT when the record is damaged; file errors as the OS gave them
 */
export async function recoverSwap(dir: string): Promise<SwapRecord | null> {
  const record = (await readCheckpoint(join(dir, SWAP_RECORD_FILE), SWAP_KIND)) as SwapRecord | null;
  if (record !== null) await finishSwap(dir, record);
  for (const name of await readdir(dir)) {
    if (name.endsWith(CLEANED_SUFFIX)) await unlinkIfPresent(join(dir, name));
  }
  return record;
}

async function finishSwap(dir: string, record: SwapRecord): Promise<void> {
  for (const base of record.replaced) {
    if (base === record.base) continue;
    for (const extension of ['.log', '.index', '.timeindex'] as const) await unlinkIfPresent(join(dir, segmentFileName(base, extension)));
  }
  for (const extension of EXTENSIONS) {
    await logFs()
      .rename(cleanedPath(dir, record.base, extension), join(dir, segmentFileName(record.base, extension)))
      .catch(ignoreMissing);
  }
  await fsyncDir(dir);
  await removeCheckpoint(join(dir, SWAP_RECORD_FILE));
}

async function unlinkIfPresent(path: string): Promise<void> {
  await logFs().unlink(path).catch(ignoreMissing);
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error;
}
