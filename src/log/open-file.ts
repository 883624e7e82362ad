/**
 * Opening files in the log, with one answer to running out of descriptors:
 * EMFILE/ENFILE become LIMIT_EXCEEDED naming `openFilesMax` (the file pool
 * holds most of the log's descriptors, file-pool.ts) and `ulimit -n`, so
 * the caller sees which limit to change rather than a bare errno.
 *
 * @module
 */

import type { FileHandle } from 'node:fs/promises';
import { ConcordatError, ErrorCode } from '../errors.js';
import { logFs } from './file-system.js';

/**
 * `logFs().open(path, flags)`, flags as `fs.promises.open`'s.
 * @throws ConcordatError LIMIT_EXCEEDED when the process is out of descriptors (naming `openFilesMax` when given);
 *   other errors as the OS gave them
 */
export async function openFile(path: string, flags: string, openFilesMax?: number): Promise<FileHandle> {
  try {
    return await logFs().open(path, flags);
  } catch (error) {
    throw descriptorError(error, path, openFilesMax);
  }
}

/** Reads a whole file (descriptor exhaustion translated as by {@link openFile}). */
export async function readWholeFile(path: string): Promise<Buffer> {
  try {
    return await logFs().readFile(path);
  } catch (error) {
    throw descriptorError(error, path);
  }
}

/** `error` itself, unless it is EMFILE or ENFILE: then the typed LIMIT_EXCEEDED. */
export function descriptorError(error: unknown, path: string, openFilesMax?: number): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== 'EMFILE' && code !== 'ENFILE') return error;
  const option = openFilesMax === undefined ? 'openFilesMax' : `openFilesMax (${openFilesMax})`;
  return new ConcordatError(
    `opening ${path} failed: the process has no file descriptor left (${code}); lower the log option ${option} or raise the process's limit (ulimit -n)`,
    { code: ErrorCode.LIMIT_EXCEEDED, retriable: true, cause: error, context: { limit: 'openFilesMax', path } },
  );
}
