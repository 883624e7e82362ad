/**
 * A partition's log start offset when it lies inside its first segment
 * (Kafka's `log-start-offset-checkpoint`, kept per partition here): set by
 * DeleteRecords, which moves the start past records without a segment
 * boundary there. Without the file the log starts at its first segment's
 * base offset.
 *
 * File `<partition dir>/log-start-offset`, a checkpoint file
 * (checkpoint-file.ts: replaced atomically, length and CRC-32C in its
 * header), body `{ "offset": <log start offset> }`. It is written, and
 * synced, before DeleteRecords answers, so a start offset a client was told
 * survives a crash. An offset at or below the first segment's base offset
 * (retention has since deleted past it) means nothing and is left as it is.
 *
 * @module
 */

import { join } from 'node:path';
import { ConcordatError, ErrorCode } from '../errors.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint-file.js';

/** Name of the file in a partition directory. */
export const LOG_START_OFFSET_FILE = 'log-start-offset';
const KIND = 'log-start-offset';

/** The recorded log start offset of the partition in `dir`, or null when there is none. @throws ConcordatError STORAGE_CORRUPT */
export async function readLogStartOffset(dir: string): Promise<number | null> {
  const path = join(dir, LOG_START_OFFSET_FILE);
  const body = (await readCheckpoint(path, KIND)) as { offset?: unknown } | null;
  if (body === null) return null;
  if (typeof body.offset !== 'number' || !Number.isSafeInteger(body.offset) || body.offset < 0) {
    throw new ConcordatError(`checkpoint ${path} is corrupt: no offset`, { code: ErrorCode.STORAGE_CORRUPT });
  }
  return body.offset;
}

/** Records `offset` as the log start offset of the partition in `dir`, durably. @throws ConcordatError KAFKA_STORAGE_ERROR (disk full) */
export function writeLogStartOffset(dir: string, offset: number): Promise<void> {
  return writeCheckpoint(join(dir, LOG_START_OFFSET_FILE), KIND, { offset });
}
