/**
 * One home for a failed write or read of the log (an operating error, not a
 * bug): the partition's append pipeline, the committed-offsets log and the
 * checkpoint files all turn a failed write into KAFKA_STORAGE_ERROR,
 * retriable (the write was undone, nothing acknowledged was touched, and
 * the same request may succeed once the cause is gone), and the partition's
 * reads do the same with a failed read. The broker shows Kafka's
 * KAFKA_STORAGE_ERROR (56), which clients retry.
 *
 * A full file system (ENOSPC) or a used-up quota (EDQUOT) is named as such,
 * with what the operator can do about it; any other cause (EIO, ...) keeps
 * its own text.
 *
 * @module
 */

import { ConcordatError, ErrorCode } from '../errors.js';

/** Whether `error` is the OS saying the file system is full (ENOSPC) or the quota is used up (EDQUOT). */
export function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * The error for a write that failed and was undone.
 * @param what what failed, e.g. `append to topic 't' partition 0`
 * @param kept what stays as it was, e.g. `nothing unacknowledged was kept`
 * @param dir a directory on the file system that filled up
 */
export function storageWriteError(what: string, kept: string, dir: string, cause: unknown, context: Record<string, unknown> = {}): ConcordatError {
  const text = cause instanceof Error ? cause.message : String(cause);
  if (!isDiskFull(cause)) {
    return new ConcordatError(`${what} failed: ${text}; ${kept}, retry`, { code: ErrorCode.KAFKA_STORAGE_ERROR, cause, context });
  }
  return new ConcordatError(
    `${what} failed: the disk is full (${text}); ${kept}. Free space on the file system holding ${dir} ` +
      `(delete other files there, lower the topics' retentionMs or retentionBytes, or grow the volume), then retry`,
    { code: ErrorCode.KAFKA_STORAGE_ERROR, cause, context: { ...context, diskFull: true, dir } },
  );
}

/**
 * A file error of a read (EIO, ...) as KAFKA_STORAGE_ERROR, retriable, as
 * Kafka reports an IOException while reading a log: the client backs off
 * and reads again, nothing was changed. Typed errors (LIMIT_EXCEEDED for
 * EMFILE, STORAGE_CORRUPT) and programming errors (no `syscall`) are
 * returned as they are.
 * @param what what failed, e.g. `read of topic 't' partition 0 at offset 5`
 * @returns the error to throw: a new ConcordatError, or `cause` itself
 */
export function storageReadError(what: string, cause: unknown, context: Record<string, unknown> = {}): unknown {
  if (cause instanceof ConcordatError || typeof (cause as NodeJS.ErrnoException).syscall !== 'string') return cause;
  const text = cause instanceof Error ? cause.message : String(cause);
  return new ConcordatError(`${what} failed: ${text}; check the disk, then read again`, { code: ErrorCode.KAFKA_STORAGE_ERROR, cause, context });
}
