import { open, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tryLock, unlock } from 'fs-native-extensions';
import { ConcordatError, ErrorCode } from '../errors.js';

/** Directories this process holds, for a clearer message than the OS lock gives. */
const HELD = new Set<string>();

/**
 * Keeps two log managers from opening one data directory: they would
 * interleave writes to the same segment files.
 *
 * Like Kafka's `.lock`, this is an OS file lock on `<dataDir>/.lock`, held
 * from open to close through one open file: an exclusive open-file-
 * description lock (fcntl F_OFD_SETLK) on Linux, flock(2) on macOS,
 * LockFileEx on Windows, taken through `fs-native-extensions` (prebuilt
 * binaries, no install script). The kernel releases it when the owner's
 * files are closed, which happens when the owner dies and before it becomes
 * a zombie. Why not a PID check: `kill(pid, 0)` succeeds for a zombie that
 * nobody has reaped yet (after a group SIGKILL under npx, node waits 1–1.7 s
 * for PID 1) and for an unrelated process that reused the PID, so a
 * supervisor restarting at once was refused; comparing /proc start times
 * would fix Linux only and still race two takers of one stale lock. The
 * lock has no such race: of two processes starting at once, exactly one
 * gets it.
 *
 * Bytes: the owner's PID in decimal and a newline, written after the lock is
 * taken, emptied by a clean close. It names the owner in the error (the lock
 * decides, not the PID), and a PID found there by the next owner means the
 * previous one did not close cleanly ({@link DirLock.previousOwner}, Kafka's
 * `.kafka_cleanshutdown` the other way round). The file stays after close
 * (deleting it would let a process that opened the old file and one that
 * creates a new one both hold "the" lock). Within one
 * process a second open is refused by a set of held directories (the OFD
 * lock would refuse it too, with a less precise message).
 */
export class DirLock {
  private constructor(
    private readonly dir: string,
    private readonly file: FileHandle,
    /** PID of the previous owner when it did not close cleanly (it crashed, or its open failed); null after a clean close or on a new directory. */
    readonly previousOwner: number | null,
  ) {}

  /**
   * Takes the lock of `dataDir` (an existing directory), creating `.lock`.
   * @throws ConcordatError LOG_DIR_LOCKED while another process, or this one, has it open
   */
  static async acquire(dataDir: string): Promise<DirLock> {
    const dir = resolve(dataDir);
    if (HELD.has(dir)) {
      throw locked(
        dir,
        `this process (${process.pid}) already has it open: one log directory serves one log at a time. For several apps in one process, ` +
          `create one EmbeddedTransport and pass it to each app as \`transport\`, or give each app its own dataDir`,
      );
    }
    HELD.add(dir);
    try {
      const { file, previousOwner } = await takeLock(dir);
      return new DirLock(dir, file, previousOwner);
    } catch (error) {
      HELD.delete(dir);
      throw error;
    }
  }

  /**
   * Releases the lock (closing the file releases it too); the file stays.
   * With `clean`, first empties it: the next owner then sees a clean close.
   */
  async release(options: { clean: boolean }): Promise<void> {
    try {
      if (options.clean) await this.file.truncate(0);
    } finally {
      await this.unlockAndClose();
    }
  }

  private async unlockAndClose(): Promise<void> {
    try {
      unlock(this.file.fd);
    } finally {
      await this.file.close();
      HELD.delete(this.dir);
    }
  }
}

async function takeLock(dir: string): Promise<{ file: FileHandle; previousOwner: number | null }> {
  const path = join(dir, '.lock');
  // 'a+' creates without truncating: the owner's PID stays readable to a loser.
  const file = await open(path, 'a+');
  try {
    const granted = tryLock(file.fd);
    const owner = (await file.readFile('utf8')).trim();
    const pid = /^\d+$/.test(owner) ? Number(owner) : null;
    if (!granted) throw locked(dir, pid === null ? 'another process has it open' : `process ${pid} has it open`);
    await file.truncate(0);
    await file.write(`${process.pid}\n`, 0);
    await file.datasync();
    return { file, previousOwner: pid };
  } catch (error) {
    await file.close();
    throw error;
  }
}

function locked(dir: string, reason: string): ConcordatError {
  return new ConcordatError(`log directory ${dir} is locked: ${reason}`, { code: ErrorCode.LOG_DIR_LOCKED, context: { dir } });
}
