import { ConcordatError, ErrorCode } from '../../errors.js';

/** The log closed or the partition deleted: the worker has nothing left to consume. */
export function isGone(error: unknown): boolean {
  return error instanceof ConcordatError && (error.code === ErrorCode.LOG_CLOSED || error.code === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
}

/** The error of an operation on a closed embedded transport or subscription. */
export function transportClosed(): ConcordatError {
  return new ConcordatError('the embedded transport is closed', { code: ErrorCode.TRANSPORT_CLOSED });
}
