import { open, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConcordatError, ErrorCode } from '../errors.js';

/**
 * Keeps two log managers from opening one data directory: they would
 * interleave writes to the same segment files.
 *
 * File `<dataDir>/.lock` holds the owner's PID in decimal. Node has no
 * flock(2), so a lock whose PID no longer runs (the owner was killed) is
 * stale and taken over; within one process a set of held directories does
 * the same job. Two processes racing to take over one stale lock is not
 * prevented; starting two owners of one directory at the same instant after
 * a crash is an operating error this check does not cover.
 */
const HELD = new Set<string>();

export class DirLock {
  private constructor(
    private readonly dir: string,
    private readonly path: string,
  ) {}

  /** @throws ConcordatError LOG_DIR_LOCKED */
  static async acquire(dataDir: string): Promise<DirLock> {
    const dir = resolve(dataDir);
    if (HELD.has(dir)) throw locked(dir, `this process (${process.pid}) already has it open`);
    const path = join(dir, '.lock');
    HELD.add(dir);
    try {
      await takeLockFile(path, dir);
    } catch (error) {
      HELD.delete(dir);
      throw error;
    }
    return new DirLock(dir, path);
  }

  async release(): Promise<void> {
    await rm(this.path, { force: true });
    HELD.delete(this.dir);
  }
}

async function takeLockFile(path: string, dir: string): Promise<void> {
  try {
    const file = await open(path, 'wx');
    await file.writeFile(`${process.pid}\n`);
    await file.close();
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const owner = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
  if (Number.isInteger(owner) && owner !== process.pid && isRunning(owner)) {
    throw locked(dir, `process ${owner} has it open`);
  }
  const file = await open(path, 'w');
  await file.writeFile(`${process.pid}\n`);
  await file.close();
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function locked(dir: string, reason: string): ConcordatError {
  return new ConcordatError(`log directory ${dir} is locked: ${reason}`, { code: ErrorCode.LOG_DIR_LOCKED, context: { dir } });
}
