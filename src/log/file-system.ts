import type { MakeDirectoryOptions, RmOptions } from 'node:fs';
import { mkdir, open, readFile, rename, rm, unlink, type FileHandle } from 'node:fs/promises';

/**
 * The file-system calls the log engine makes, as one replaceable object: a
 * seam for tests that inject faults or model a power loss
 * (test/integration/log/power-loss/). Production never replaces it; each
 * call costs one property lookup over calling `node:fs/promises` directly.
 *
 * Every file and directory of a log's data directory (segments, indexes,
 * producer snapshots, checkpoint files, the committed-offsets log) is opened,
 * created, renamed and removed through it, and every write and sync goes
 * through a handle it opened. Calls that only look (readdir, stat) go to
 * `node:fs` directly. The `.lock` file is not covered: its content only
 * says whether the last close was clean (dir-lock.ts).
 */
export interface LogFileSystem {
  /** `fs.promises.open`; flags as there ('r', 'r+', 'w', 'w+', 'a+'). */
  open(path: string, flags: string): Promise<FileHandle>;
  readFile(path: string): Promise<Buffer>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rm(path: string, options?: RmOptions): Promise<void>;
  mkdir(path: string, options?: MakeDirectoryOptions): Promise<string | undefined>;
}

/** `node:fs/promises` itself. */
export const NODE_FILE_SYSTEM: LogFileSystem = {
  open: (path, flags) => open(path, flags),
  readFile: (path) => readFile(path),
  rename,
  unlink,
  rm,
  mkdir,
};

let current: LogFileSystem = NODE_FILE_SYSTEM;

/** The file system the log uses now. */
export function logFs(): LogFileSystem {
  return current;
}

/**
 * For tests only: makes every log engine of this process use `fs` from now
 * on (files opened before keep their handles). Returns a function that puts
 * the previous one back.
 */
export function replaceLogFileSystem(fs: LogFileSystem): () => void {
  const previous = current;
  current = fs;
  return () => {
    current = previous;
  };
}
