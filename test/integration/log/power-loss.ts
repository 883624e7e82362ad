/**
 * A power-loss model for the log engine, at its file-system seam
 * (src/log/file-system.ts): what a crash of the machine, not just of the
 * process, leaves on disk.
 *
 * The model (the pessimistic one of crash-consistency checkers such as
 * ALICE and CrashMonkey): after a power loss
 * - a file holds exactly what it held at its last fsync/fdatasync: every
 *   write and truncate since is lost (a file never synced is empty);
 * - a directory holds exactly the entries it held at its last fsync: files
 *   created, renamed in or out, or removed since, and subdirectories made
 *   since, are undone, each directory on its own.
 *
 * How: the log under test runs in a child process whose log file system is
 * a {@link JournalingFileSystem}. Before every change it appends to a
 * journal, synchronously (so that a SIGKILL cannot overtake it), what the
 * change destroys: the bytes a write overwrites and the file's old size, the
 * tail a truncate cuts, the inode a directory entry named; after every
 * successful sync it appends that the file (or directory) is now durable.
 * Every inode it touches gets a hard link in the journal, so that its bytes
 * can still be reached after an unlink or a rename. After the child is
 * killed, {@link simulatePowerLoss} walks the journal backwards and undoes
 * everything that was not made durable, leaving the data directory as the
 * model says the machine would find it on boot.
 *
 * Reads, readdir and stat go straight to the disk: they change nothing.
 * Only calls made through the seam are journaled; the engine makes all of
 * its changes there (the `.lock` file, whose content only says whether the
 * last close was clean, is the exception and is left as it is).
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { NODE_FILE_SYSTEM, type LogFileSystem } from '../../../src/log/file-system.js';

/** What a directory entry named before a change: an inode (a file, reachable through its journal link), a directory, or nothing. */
type EntryBefore = number | 'dir' | null;

type JournalRecord =
  | { op: 'write'; ino: number; pos: number; len: number; oldSize: number; old: string }
  | { op: 'truncate'; ino: number; size: number; oldSize: number; old: string }
  | { op: 'sync'; ino: number }
  | { op: 'entry'; dir: string; name: string; before: EntryBefore }
  | { op: 'dirsync'; dir: string }
  | { op: 'mark'; text: string };

const JOURNAL_FILE = 'journal.jsonl';
const LINKS_DIR = 'inodes';

/**
 * The log file system of a process whose power may be cut: node's, plus the
 * journal described above, in `journalDir` (on the same file system as the
 * data, for the hard links).
 */
export class JournalingFileSystem implements LogFileSystem {
  private readonly journal: number;
  private readonly links: string;

  private writes = 0;

  /**
   * @param killAfterWrites when > 0, the process SIGKILLs itself as soon as
   *   its that-many-th write (or writev) is done: a crash with written bytes
   *   not yet synced, wherever the writes happen to be.
   */
  constructor(
    journalDir: string,
    private readonly killAfterWrites = 0,
  ) {
    mkdirSync(journalDir, { recursive: true });
    this.links = join(journalDir, LINKS_DIR);
    mkdirSync(this.links, { recursive: true });
    this.journal = openSync(join(journalDir, JOURNAL_FILE), 'a');
  }

  /** Closes the journal (calls made afterwards fail). */
  close(): void {
    closeSync(this.journal);
  }

  /** Records a point in time (e.g. "append acknowledged"), for a test that reads the journal. */
  mark(text: string): void {
    this.record({ op: 'mark', text });
  }

  async open(path: string, flags: string): Promise<FileHandle> {
    const full = resolve(path);
    const creates = flags.startsWith('w') || flags.startsWith('a');
    let existing: { ino: number; dir: boolean } | null = null;
    try {
      const info = statSync(full);
      existing = { ino: info.ino, dir: info.isDirectory() };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (existing === null && creates) this.record({ op: 'entry', dir: dirname(full), name: basename(full), before: null });
    if (existing !== null && !existing.dir && flags.startsWith('w')) {
      // O_TRUNC: the old bytes go.
      this.keepInode(full, existing.ino);
      const old = readFileSync(full);
      if (old.length > 0) this.record({ op: 'truncate', ino: existing.ino, size: 0, oldSize: old.length, old: old.toString('base64') });
    }
    const handle = await NODE_FILE_SYSTEM.open(full, flags);
    const info = fstatSync(handle.fd);
    if (info.isDirectory()) return this.directoryHandle(handle, full);
    this.keepInode(full, info.ino);
    return this.fileHandle(handle, info.ino);
  }

  readFile(path: string): Promise<Buffer> {
    return NODE_FILE_SYSTEM.readFile(path);
  }

  async rename(from: string, to: string): Promise<void> {
    const source = resolve(from);
    const target = resolve(to);
    const moved = this.entryOf(source);
    if (moved === null) return NODE_FILE_SYSTEM.rename(from, to);
    this.record({ op: 'entry', dir: dirname(source), name: basename(source), before: moved });
    this.record({ op: 'entry', dir: dirname(target), name: basename(target), before: this.entryOf(target) });
    return NODE_FILE_SYSTEM.rename(source, target);
  }

  async unlink(path: string): Promise<void> {
    const full = resolve(path);
    const before = this.entryOf(full);
    if (before !== null) this.record({ op: 'entry', dir: dirname(full), name: basename(full), before });
    return NODE_FILE_SYSTEM.unlink(full);
  }

  async rm(path: string, options?: Parameters<LogFileSystem['rm']>[1]): Promise<void> {
    const full = resolve(path);
    this.recordRemoval(full);
    return NODE_FILE_SYSTEM.rm(full, options);
  }

  async mkdir(path: string, options?: Parameters<LogFileSystem['mkdir']>[1]): Promise<string | undefined> {
    const full = resolve(path);
    // Each component that does not exist yet is a new entry of its parent.
    const missing: string[] = [];
    for (let dir = full; !existsSync(dir); dir = dirname(dir)) missing.unshift(dir);
    for (const dir of missing) this.record({ op: 'entry', dir: dirname(dir), name: basename(dir), before: null });
    return NODE_FILE_SYSTEM.mkdir(full, options);
  }

  /** Journals the removal of `path` and, for a directory, of everything in it (deepest first, so that undoing goes top down). */
  private recordRemoval(path: string): void {
    const before = this.entryOf(path);
    if (before === null) return;
    this.record({ op: 'entry', dir: dirname(path), name: basename(path), before });
    if (before !== 'dir') return;
    for (const name of readdirSync(path)) this.recordRemoval(join(path, name));
  }

  /** What the entry at `path` names now (keeping a file's inode reachable), or null when there is none. */
  private entryOf(path: string): EntryBefore {
    let info;
    try {
      info = lstatSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    if (info.isDirectory()) return 'dir';
    this.keepInode(path, info.ino);
    return info.ino;
  }

  private keepInode(path: string, ino: number): void {
    const link = join(this.links, String(ino));
    if (!existsSync(link)) linkSync(path, link);
  }

  private record(entry: JournalRecord): void {
    writeSync(this.journal, `${JSON.stringify(entry)}\n`);
  }

  /** A file's handle whose writes, truncates and syncs are journaled. */
  private fileHandle(handle: FileHandle, ino: number): FileHandle {
    const fd = handle.fd;
    const beforeWrite = (pos: number, length: number): void => {
      const oldSize = fstatSync(fd).size;
      const overwritten = Math.max(0, Math.min(pos + length, oldSize) - pos);
      const old = Buffer.alloc(overwritten);
      if (overwritten > 0) readSync(fd, old, 0, overwritten, pos);
      this.record({ op: 'write', ino, pos, len: length, oldSize, old: old.toString('base64') });
    };
    const beforeTruncate = (size: number): void => {
      const oldSize = fstatSync(fd).size;
      const old = Buffer.alloc(Math.max(0, oldSize - size));
      if (old.length > 0) readSync(fd, old, 0, old.length, size);
      this.record({ op: 'truncate', ino, size, oldSize, old: old.toString('base64') });
    };
    const synced = (): void => this.record({ op: 'sync', ino });
    const afterWrite = (): void => {
      this.writes += 1;
      if (this.writes === this.killAfterWrites) process.kill(process.pid, 'SIGKILL');
    };
    let written = false;
    const wrapped: Overrides = {
      async write(buffer: unknown, offset?: unknown, length?: unknown, position?: unknown) {
        if (!Buffer.isBuffer(buffer) || typeof offset !== 'number' || typeof length !== 'number' || typeof position !== 'number') {
          throw new Error('JournalingFileSystem: only positional writes of a Buffer are modelled');
        }
        beforeWrite(position, length);
        written = true;
        const result = await handle.write(buffer, offset, length, position);
        afterWrite();
        return result;
      },
      async writev(buffers: NodeJS.ArrayBufferView[], position?: number | null) {
        if (typeof position !== 'number') throw new Error('JournalingFileSystem: only positional writev is modelled');
        beforeWrite(
          position,
          buffers.reduce((sum, b) => sum + b.byteLength, 0),
        );
        written = true;
        const result = await handle.writev(buffers, position);
        afterWrite();
        return result;
      },
      async writeFile(data: unknown) {
        if (!Buffer.isBuffer(data) || written) throw new Error('JournalingFileSystem: only one writeFile of a Buffer on a fresh handle is modelled');
        beforeWrite(0, data.length);
        written = true;
        return handle.writeFile(data);
      },
      async truncate(size = 0) {
        beforeTruncate(size);
        return handle.truncate(size);
      },
      async datasync() {
        await handle.datasync();
        synced();
      },
      async sync() {
        await handle.sync();
        synced();
      },
    };
    return proxy(handle, wrapped);
  }

  /** A directory's handle: its sync makes its entries durable. */
  private directoryHandle(handle: FileHandle, dir: string): FileHandle {
    const dirsync = (): void => this.record({ op: 'dirsync', dir });
    return proxy(handle, {
      async sync() {
        await handle.sync();
        dirsync();
      },
      async datasync() {
        await handle.datasync();
        dirsync();
      },
    });
  }
}

/** Replacement methods of a FileHandle, by name. */
type Overrides = Record<string, (...args: never[]) => Promise<unknown>>;

function proxy(handle: FileHandle, overrides: Overrides): FileHandle {
  return new Proxy(handle, {
    get(target, property, receiver) {
      if (typeof property === 'string' && Object.hasOwn(overrides, property)) return overrides[property];
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** What {@link simulatePowerLoss} undid. */
export interface PowerLossReport {
  /** Writes and truncates lost (not followed by a sync of their file). */
  lostWrites: number;
  /** Directory entries put back as they were at their directory's last fsync. */
  lostEntries: number;
  /** Writes that survived only in part (`unsynced: 'some'`). */
  tornWrites: number;
  /** The journal's marks, in order, with how many records preceded each. */
  marks: { text: string; at: number }[];
}

/** How a power loss treats what was not made durable. */
export interface PowerLossOptions {
  /** Maps the journal's directory paths onto a copy's (see {@link powerLossCopy}). */
  relocate?: { from: string; to: string };
  /**
   * `none` (the default): nothing unsynced survives. `some`: per file, a
   * random prefix of its unsynced writes survives, the last of them possibly
   * torn (cut short, or with zeros for its tail, as when the file's size
   * reached the disk before its data); per directory, a random prefix of
   * its unsynced entry changes survives. What was synced survives either way.
   */
  unsynced?: 'none' | 'some';
  /** Random numbers in [0, 1) for `some`. @default Math.random */
  random?: () => number;
}

/**
 * Cuts the power of the (dead) process that journaled into `journalDir`:
 * undoes every change the journal says was not durable (with `unsynced:
 * 'some'`, only some of them), then deletes the journal. Call it only after
 * the process is gone, or on a copy ({@link powerLossCopy}).
 */
export function simulatePowerLoss(journalDir: string, options: PowerLossOptions = {}): PowerLossReport {
  const records = readJournal(journalDir);
  const { relocate, unsynced = 'none', random = Math.random } = options;
  if (relocate !== undefined) {
    const move = (dir: string): string => (dir === relocate.from || dir.startsWith(`${relocate.from}/`) ? relocate.to + dir.slice(relocate.from.length) : dir);
    for (const record of records) if (record.op === 'entry' || record.op === 'dirsync') record.dir = move(record.dir);
  }
  const links = join(journalDir, LINKS_DIR);
  const lastSync = new Map<number, number>();
  const lastDirSync = new Map<string, number>();
  records.forEach((record, i) => {
    if (record.op === 'sync') lastSync.set(record.ino, i);
    if (record.op === 'dirsync') lastDirSync.set(record.dir, i);
  });
  const report: PowerLossReport = { lostWrites: 0, lostEntries: 0, tornWrites: 0, marks: [] };
  // Unsynced changes, per file and per directory, in order.
  const contentChanges = new Map<number, number[]>();
  const entryChanges = new Map<string, number[]>();
  records.forEach((record, i) => {
    if (record.op === 'mark') report.marks.push({ text: record.text, at: i });
    if ((record.op === 'write' || record.op === 'truncate') && (lastSync.get(record.ino) ?? -1) < i) push(contentChanges, record.ino, i);
    if (record.op === 'entry' && (lastDirSync.get(record.dir) ?? -1) < i) push(entryChanges, record.dir, i);
  });
  const survivors = (count: number): number => (unsynced === 'none' ? 0 : Math.floor(random() * (count + 1)));
  // Contents first, through the inodes' links (entries may no longer reach them), newest change first.
  for (const [ino, changes] of contentChanges) {
    const kept = survivors(changes.length);
    const fd = openSync(join(links, String(ino)), 'r+');
    try {
      for (let k = changes.length - 1; k >= kept; k--) {
        undoContent(fd, records[changes[k]!] as Extract<JournalRecord, { op: 'write' | 'truncate' }>);
        report.lostWrites += 1;
      }
      const last = kept > 0 ? records[changes[kept - 1]!]! : null;
      if (last?.op === 'write' && last.len > 1 && random() < 0.5) {
        tearWrite(fd, last, 1 + Math.floor(random() * (last.len - 1)), random() < 0.5);
        report.tornWrites += 1;
      }
    } finally {
      closeSync(fd);
    }
  }
  // Then directory entries, newest change first, each directory back to its last fsync (or a little after).
  const undone: number[] = [];
  for (const changes of entryChanges.values()) undone.push(...changes.slice(survivors(changes.length)));
  for (const i of undone.sort((a, b) => b - a)) {
    const record = records[i] as Extract<JournalRecord, { op: 'entry' }>;
    if (!existsSync(record.dir)) continue;
    report.lostEntries += 1;
    const path = join(record.dir, record.name);
    rmSync(path, { recursive: true, force: true });
    if (record.before === 'dir') mkdirSync(path);
    else if (record.before !== null) linkSync(join(links, String(record.before)), path);
  }
  rmSync(journalDir, { recursive: true, force: true });
  return report;
}

function push<K>(map: Map<K, number[]>, key: K, value: number): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/** Puts back what a write or truncate changed. */
function undoContent(fd: number, record: Extract<JournalRecord, { op: 'write' | 'truncate' }>): void {
  const old = Buffer.from(record.old, 'base64');
  if (record.op === 'write') {
    if (old.length > 0) writeSync(fd, old, 0, old.length, record.pos);
    ftruncateSync(fd, record.oldSize);
  } else {
    ftruncateSync(fd, record.oldSize);
    if (old.length > 0) writeSync(fd, old, 0, old.length, record.size);
  }
}

/**
 * Keeps only the first `kept` bytes of a write (the file is as the write
 * left it): the rest of the range gets its old bytes back, and past the old
 * end of the file it is cut off, or with `zeros` it stays as zeros.
 */
function tearWrite(fd: number, record: Extract<JournalRecord, { op: 'write' }>, kept: number, zeros: boolean): void {
  const old = Buffer.from(record.old, 'base64');
  if (kept < old.length) writeSync(fd, old, kept, old.length - kept, record.pos + kept);
  const from = Math.max(record.pos + kept, record.oldSize);
  const to = record.pos + record.len;
  if (from >= to) return;
  if (zeros) writeSync(fd, Buffer.alloc(to - from), 0, to - from, from);
  else ftruncateSync(fd, from);
}

function readJournal(journalDir: string): JournalRecord[] {
  let text: string;
  try {
    text = readFileSync(join(journalDir, JOURNAL_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const lines = text.split('\n');
  // A line cut by the kill (never seen: each record is one write(2)) would be the last one.
  if (!text.endsWith('\n')) lines.pop();
  return lines.filter((line) => line.length > 0).map((line) => JSON.parse(line) as JournalRecord);
}

/**
 * What a power loss now would leave, without stopping the log that runs in
 * this process: copies `root` (holding the data directory and the journal
 * of the installed {@link JournalingFileSystem}) to `copy` with `cp -a`,
 * which keeps the journal's hard links pointing at the copied files, and
 * applies the power loss to the copy. Call it while the log is idle (every
 * append and commit answered, no checkpoint running).
 */
export function powerLossCopy(root: string, journalDir: string, copy: string, options: Omit<PowerLossOptions, 'relocate'> = {}): PowerLossReport {
  const from = resolve(root);
  const to = resolve(copy);
  execFileSync('cp', ['-a', `${from}/.`, to]);
  return simulatePowerLoss(join(to, relative(from, resolve(journalDir))), { ...options, relocate: { from, to } });
}
