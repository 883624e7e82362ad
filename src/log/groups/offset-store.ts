/**
 * The committed-offsets log of all consumer groups (with the stored
 * membership of static groups): its append-only file with group commit, its
 * snapshot and compaction, and its recovery on open. One concept, kept in
 * one file although it is over 400 lines.
 */
import { crc32c } from '@node-rs/crc32';
import { readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ConcordatError, ErrorCode } from '../../errors.js';
import type { Logger } from '../../observability/index.js';
import { fsyncDir, makeDurableDir, readCheckpoint, writeCheckpoint } from '../checkpoint-file.js';
import { logFs } from '../file-system.js';
import { storageWriteError } from '../storage-error.js';

/** One partition's committed offset as a group stored it (Kafka's OffsetAndMetadata); the commit time is epoch ms. */
export interface CommittedOffset {
  offset: number;
  leaderEpoch: number;
  metadata: string;
  commitTimestampMs: number;
}

/** A committed offset with its topic and partition. */
export interface OffsetEntry extends CommittedOffset {
  topic: string;
  partition: number;
}

type StoredRow = [string, number, number, number, string, number];

/** One member as stored: [memberId, groupInstanceId, clientId, clientHost, sessionTimeoutMs, rebalanceTimeoutMs, [[protocol, metadata base64]], assignment base64]. */
export type StoredMember = [string, string | null, string, string, number, number, [string, string][], string];

/** A group's membership as of its last stable generation (Kafka's GroupMetadataValue). */
export interface StoredGroupMetadata {
  /** Generation. */
  gen: number;
  /** Protocol type ('consumer'). */
  pt: string;
  /** Chosen protocol (the assignor). */
  pn: string;
  /** Leader's member ID. */
  l: string;
  mem: StoredMember[];
}

interface Payload {
  g: string;
  o?: StoredRow[];
  x?: [string, number][];
  d?: 1;
  m?: StoredGroupMetadata | null;
}

interface PendingWrite {
  payload: Payload;
  bytes: Buffer;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Directory of the committed offsets, under the log's data directory. */
export const GROUPS_DIR = '.groups';
const SNAPSHOT_KIND = 'group-offsets';
const RECORD_HEADER_BYTES = 8;
/** Most commits in one write (each is one record). */
const WRITE_RECORDS_MAX = 4096;

/**
 * Durable committed offsets of consumer groups, and the membership of groups
 * with static members (KIP-345): an append-only log with group commit and
 * periodic compaction into a snapshot — Kafka's `__consumer_offsets` idea
 * (which holds both), without a partitioned topic.
 *
 * Files in `<dataDir>/.groups/`, numbered by generation G (20 digits):
 * ```
 * offsets-G.log        records appended since generation G began
 * offsets-G.snapshot   the offsets as of the start of generation G (a
 *                      checkpoint file, checkpoint-file.ts; body
 *                      { "groups": [[groupId, [[topic, partition, offset, leaderEpoch, metadata, commitTimestampMs], ...]], ...],
 *                        "members": [[groupId, <group metadata>], ...] }; "members" may be absent)
 * ```
 * A log record: `length u32 | crc32c u32 (of the payload) | payload`, the
 * payload JSON: `{ "g": groupId, "o": [[topic, partition, offset,
 * leaderEpoch, metadata, commitTimestampMs], ...] }` for a commit,
 * `{ "g", "x": [[topic, partition], ...] }` to remove offsets, `{ "g", "d": 1 }`
 * to delete a group's offsets and metadata, `{ "g", "m": <group metadata> }`
 * to store a group's membership and `{ "g", "m": null }` to forget it.
 * Group metadata ({@link StoredGroupMetadata}, Kafka's GroupMetadataValue):
 * `{ "gen", "pt", "pn", "l", "mem": [[memberId, groupInstanceId, clientId,
 * clientHost, sessionTimeoutMs, rebalanceTimeoutMs, [[protocol, metadata
 * base64], ...], assignment base64], ...] }`.
 *
 * Why a log and not a checkpoint file per group (phase A): a commit then
 * cost a rewrite of the group's file plus two syncs and a rename (measured
 * 1.6-1.9 ms on the reference VM) and commits of different groups never
 * shared a sync. Here a commit is one small append, and every commit that
 * arrives while a write is under way, from any group, shares the next
 * write and its one fdatasync (measured in `npm run bench:log`).
 * At low message rates an embedded consumer commits after every record, so
 * this is the cost that matters.
 *
 * Compaction: when the current log passes `offsetsLogBytesMax` (and twice
 * the last snapshot), the writer starts log G+1, writes snapshot G+1 with
 * the offsets after all of log G, and then removes log G and snapshot G.
 * Open loads the newest snapshot and replays the logs of its generation and
 * later, removing older files. A crash at any step leaves either the old
 * snapshot plus both logs, or the new snapshot (the older log is ignored),
 * both giving the same offsets.
 *
 * After a crash: every commit whose promise resolved is in a synced record;
 * a record torn by the crash fails its length or CRC and the log is cut
 * there. A write or sync failure (disk full) rejects the commits it carried
 * (KAFKA_STORAGE_ERROR, retriable) and cuts the log back to its last good
 * byte, so later commits are not hidden behind a broken record.
 *
 * Concurrency (one event loop; calls interleave at every await): reads
 * (`get`, `list`, ...) answer from memory at any time and see only durable
 * offsets. `commit`, `deleteGroup` and `removeTopic` may overlap each other
 * in any number: each queues a record, and one writer takes what is queued
 * (up to WRITE_RECORDS_MAX records a round) into one write and one
 * fdatasync, in queue order. `close` waits for the writes under way; later
 * writes fail with COORDINATOR_NOT_AVAILABLE (retriable).
 */
export class OffsetStore {
  private readonly groups = new Map<string, Map<string, OffsetEntry>>();
  private readonly metadata = new Map<string, StoredGroupMetadata>();
  private readonly queue: PendingWrite[] = [];
  private writing: Promise<void> | null = null;
  private file: FileHandle | null = null;
  private size = 0;
  private generation: number;
  private lastSnapshotBytes = 0;
  private broken: ConcordatError | null = null;
  private closed = false;
  /** Counters for tests and benchmarks. */
  readonly stats = { writes: 0, records: 0, compactions: 0 };

  private constructor(
    private readonly dir: string,
    private readonly logBytesMax: number,
    private readonly logger: Logger,
    generation: number,
  ) {
    this.generation = generation;
  }

  /**
   * Opens `<dataDir>/.groups/`: loads the newest snapshot, replays the logs after it (cutting a torn tail),
   * finishes a compaction a crash interrupted, and removes the files it superseded.
   * @throws ConcordatError STORAGE_CORRUPT when a snapshot is damaged; file errors as the OS gave them
   */
  static async open(dataDir: string, logBytesMax: number, logger: Logger): Promise<OffsetStore> {
    const dir = join(dataDir, GROUPS_DIR);
    await makeDurableDir(dir);
    const { snapshots, logs } = await listFiles(dir);
    const snapshotGeneration = snapshots.length > 0 ? snapshots[snapshots.length - 1]! : 0;
    const store = new OffsetStore(dir, logBytesMax, logger, snapshotGeneration);
    if (snapshots.length > 0) await store.loadSnapshot(snapshotGeneration);
    const replayed = logs.filter((g) => g >= snapshotGeneration);
    for (const generation of replayed) await store.replayLog(generation);
    const legacy = snapshots.length === 0 && logs.length === 0 ? await store.importLegacyFiles() : [];
    if (replayed.length > 1 || legacy.length > 0) {
      // A compaction was cut short (or phase A's files were read): fold everything into a snapshot of a fresh generation.
      store.generation = (replayed[replayed.length - 1] ?? 0) + 1;
      await writeCheckpoint(join(dir, snapshotName(store.generation)), SNAPSHOT_KIND, store.snapshotBody());
    } else {
      store.generation = replayed[0] ?? snapshotGeneration;
    }
    await store.openCurrentLog();
    for (const old of snapshots.filter((g) => g < store.generation)) await logFs().unlink(join(dir, snapshotName(old)));
    for (const old of logs.filter((g) => g < store.generation)) await logFs().unlink(join(dir, logName(old)));
    for (const name of legacy) await logFs().unlink(join(dir, name));
    return store;
  }

  /**
   * Phase A kept one checkpoint file per group (`<sha256(groupId)>.offsets`,
   * body `{ groupId, offsets: rows }`): read them once, so that their offsets
   * go into the first snapshot; returns their names for removal after it.
   */
  private async importLegacyFiles(): Promise<string[]> {
    const names = (await readdir(this.dir)).filter((name) => /^[0-9a-f]{64}\.offsets$/.test(name));
    for (const name of names) {
      const body = (await readCheckpoint(join(this.dir, name), SNAPSHOT_KIND)) as { groupId?: unknown; offsets?: unknown } | null;
      if (body === null || typeof body.groupId !== 'string' || !Array.isArray(body.offsets)) {
        throw new ConcordatError(`checkpoint ${join(this.dir, name)} is corrupt: no groupId or offsets`, { code: ErrorCode.STORAGE_CORRUPT });
      }
      this.apply({ g: body.groupId, o: body.offsets as StoredRow[] });
    }
    return names;
  }

  /** Groups that have at least one committed offset. */
  groupIds(): string[] {
    return [...this.groups.keys()].filter((groupId) => this.hasOffsets(groupId));
  }

  /** Whether the group has at least one committed offset. */
  hasOffsets(groupId: string): boolean {
    return (this.groups.get(groupId)?.size ?? 0) > 0;
  }

  /** The durable committed offset of one partition. */
  get(groupId: string, topic: string, partition: number): OffsetEntry | undefined {
    return this.groups.get(groupId)?.get(key(topic, partition));
  }

  /** Every durable committed offset of a group. */
  list(groupId: string): OffsetEntry[] {
    return [...(this.groups.get(groupId)?.values() ?? [])];
  }

  /** The latest commit time of a group's offsets, or -1. */
  lastCommitMs(groupId: string): number {
    let latest = -1;
    for (const entry of this.groups.get(groupId)?.values() ?? []) latest = Math.max(latest, entry.commitTimestampMs);
    return latest;
  }

  /** Stores offsets; resolves once they are on disk (and visible to `get`). @throws ConcordatError KAFKA_STORAGE_ERROR */
  commit(groupId: string, entries: readonly OffsetEntry[]): Promise<void> {
    const rows: StoredRow[] = entries.map((e) => [e.topic, e.partition, e.offset, e.leaderEpoch, e.metadata, e.commitTimestampMs]);
    return this.enqueue({ g: groupId, o: rows });
  }

  /** Removes every offset of a group, and its stored membership, durably. */
  deleteGroup(groupId: string): Promise<void> {
    if (!this.hasOffsets(groupId) && !this.metadata.has(groupId)) return Promise.resolve();
    return this.enqueue({ g: groupId, d: 1 });
  }

  /**
   * Stores a group's membership (null: forgets it); resolves once on disk.
   * @throws ConcordatError KAFKA_STORAGE_ERROR
   */
  storeGroupMetadata(groupId: string, metadata: StoredGroupMetadata | null): Promise<void> {
    if (metadata === null && !this.metadata.has(groupId)) return Promise.resolve();
    return this.enqueue({ g: groupId, m: metadata });
  }

  /** Every stored group membership, as of the last write. */
  storedGroups(): [string, StoredGroupMetadata][] {
    return [...this.metadata];
  }

  /** Removes some offsets of a group, durably (Kafka's OffsetDelete). */
  removeOffsets(groupId: string, partitions: readonly { topic: string; partition: number }[]): Promise<void> {
    const doomed = partitions.filter((p) => this.get(groupId, p.topic, p.partition) !== undefined).map((p): [string, number] => [p.topic, p.partition]);
    if (doomed.length === 0) return Promise.resolve();
    return this.enqueue({ g: groupId, x: doomed });
  }

  /** Removes the offsets of a deleted topic from every group. */
  async removeTopic(topic: string): Promise<void> {
    const writes: Promise<void>[] = [];
    for (const [groupId, offsets] of this.groups) {
      const doomed = [...offsets.values()].filter((e) => e.topic === topic).map((e): [string, number] => [e.topic, e.partition]);
      if (doomed.length > 0) writes.push(this.enqueue({ g: groupId, x: doomed }));
    }
    await Promise.all(writes);
  }

  /** Waits for writes under way, then closes the log. */
  async close(): Promise<void> {
    this.closed = true;
    await this.writing;
    await this.file?.close();
    this.file = null;
  }

  // ------------------------------------------------------------------ writing

  private enqueue(payload: Payload): Promise<void> {
    if (this.closed) return Promise.reject(new ConcordatError('the offset store is closed', { code: ErrorCode.COORDINATOR_NOT_AVAILABLE }));
    if (this.broken !== null) return Promise.reject(this.broken);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ payload, bytes: encodeRecord(payload), resolve, reject });
      this.writing ??= this.drain().finally(() => {
        this.writing = null;
      });
    });
  }

  /** Writes what is queued, one write and one fdatasync per round, until the queue is empty. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, WRITE_RECORDS_MAX);
      try {
        await this.writeRecords(batch.map((w) => w.bytes));
      } catch (error) {
        const failure = storageWriteError('committing offsets', 'nothing was committed', this.dir, error);
        for (const write of batch) write.reject(failure);
        await this.repair(error);
        continue;
      }
      for (const write of batch) {
        this.apply(write.payload);
        write.resolve();
      }
      this.stats.writes += 1;
      this.stats.records += batch.length;
      if (this.size > Math.max(this.logBytesMax, 2 * this.lastSnapshotBytes)) await this.compact();
    }
  }

  private async writeRecords(records: Buffer[]): Promise<void> {
    const file = this.file!;
    const bytes = records.length === 1 ? records[0]! : Buffer.concat(records);
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await file.write(bytes, done, bytes.length - done, this.size + done);
      if (bytesWritten <= 0) throw new Error(`short write at byte ${this.size + done}`);
      done += bytesWritten;
    }
    await file.datasync();
    this.size += bytes.length;
  }

  /** Cuts a failed write off the log; if even that fails, the store refuses commits until reopened. */
  private async repair(cause: unknown): Promise<void> {
    try {
      await this.file!.truncate(this.size);
      await this.file!.datasync();
    } catch (error) {
      this.broken = new ConcordatError(
        `the committed-offsets log is offline: a failed write (${(cause as Error).message}) could not be cut off (${(error as Error).message}); reopen the log`,
        { code: ErrorCode.KAFKA_STORAGE_ERROR, retriable: false, cause: error },
      );
      for (const write of this.queue.splice(0)) write.reject(this.broken);
    }
  }

  /** Starts the next generation's log and snapshots the offsets as of its start; removes the previous generation. */
  private async compact(): Promise<void> {
    const previous = this.generation;
    const state = this.snapshotBody();
    this.generation += 1;
    await this.file?.close();
    this.file = null;
    await this.openCurrentLog();
    const path = join(this.dir, snapshotName(this.generation));
    await writeCheckpoint(path, SNAPSHOT_KIND, state);
    this.lastSnapshotBytes = Buffer.byteLength(JSON.stringify(state));
    await logFs()
      .unlink(join(this.dir, logName(previous)))
      .catch(() => {});
    await logFs()
      .unlink(join(this.dir, snapshotName(previous)))
      .catch(() => {});
    this.stats.compactions += 1;
    this.logger.debug({ generation: this.generation, snapshotBytes: this.lastSnapshotBytes }, 'compacted the committed-offsets log');
  }

  private snapshotBody(): { groups: [string, StoredRow[]][]; members: [string, StoredGroupMetadata][] } {
    const groups: [string, StoredRow[]][] = [];
    for (const [groupId, offsets] of this.groups) {
      if (offsets.size === 0) continue;
      groups.push([groupId, [...offsets.values()].map((e): StoredRow => [e.topic, e.partition, e.offset, e.leaderEpoch, e.metadata, e.commitTimestampMs])]);
    }
    return { groups, members: [...this.metadata] };
  }

  // ------------------------------------------------------------------ reading

  private async openCurrentLog(): Promise<void> {
    const path = join(this.dir, logName(this.generation));
    let created = false;
    try {
      this.file = await logFs().open(path, 'r+');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.file = await logFs().open(path, 'w+');
      created = true;
    }
    this.size = (await this.file.stat()).size;
    if (created) await fsyncDir(this.dir);
  }

  private async loadSnapshot(generation: number): Promise<void> {
    const path = join(this.dir, snapshotName(generation));
    const body = (await readCheckpoint(path, SNAPSHOT_KIND)) as { groups?: unknown; members?: unknown } | null;
    if (body === null || !Array.isArray(body.groups) || (body.members !== undefined && !Array.isArray(body.members))) {
      throw new ConcordatError(`checkpoint ${path} is corrupt: no groups array`, { code: ErrorCode.STORAGE_CORRUPT });
    }
    for (const [groupId, rows] of body.groups as [string, StoredRow[]][]) this.apply({ g: groupId, o: rows });
    for (const [groupId, metadata] of (body.members ?? []) as [string, StoredGroupMetadata][]) this.apply({ g: groupId, m: metadata });
    this.lastSnapshotBytes = Buffer.byteLength(JSON.stringify(body));
  }

  /** Applies every whole record of a log; cuts a torn or damaged tail. */
  private async replayLog(generation: number): Promise<void> {
    const path = join(this.dir, logName(generation));
    const file = await logFs().open(path, 'r+');
    try {
      const content = await file.readFile();
      let pos = 0;
      let problem: string | null = null;
      while (pos < content.length) {
        problem = recordProblem(content, pos);
        if (problem !== null) break;
        const length = content.readUInt32BE(pos);
        this.apply(JSON.parse(content.toString('utf8', pos + RECORD_HEADER_BYTES, pos + RECORD_HEADER_BYTES + length)) as Payload);
        pos += RECORD_HEADER_BYTES + length;
      }
      if (pos < content.length) {
        this.logger.warn({ file: path, at: pos, cut: content.length - pos, problem }, 'cut a torn tail off the committed-offsets log');
        await file.truncate(pos);
        await file.datasync();
      }
    } finally {
      await file.close();
    }
  }

  private apply(payload: Payload): void {
    if (payload.m !== undefined) {
      if (payload.m === null) this.metadata.delete(payload.g);
      else this.metadata.set(payload.g, payload.m);
      return;
    }
    let offsets = this.groups.get(payload.g);
    if (payload.d === 1) {
      this.groups.delete(payload.g);
      this.metadata.delete(payload.g);
      return;
    }
    if (offsets === undefined) {
      offsets = new Map();
      this.groups.set(payload.g, offsets);
    }
    for (const [topic, partition, offset, leaderEpoch, metadata, commitTimestampMs] of payload.o ?? []) {
      offsets.set(key(topic, partition), { topic, partition, offset, leaderEpoch, metadata, commitTimestampMs });
    }
    for (const [topic, partition] of payload.x ?? []) offsets.delete(key(topic, partition));
    if (offsets.size === 0) this.groups.delete(payload.g);
  }
}

function encodeRecord(payload: Payload): Buffer {
  const json = Buffer.from(JSON.stringify(payload), 'utf8');
  const record = Buffer.allocUnsafe(RECORD_HEADER_BYTES + json.length);
  record.writeUInt32BE(json.length, 0);
  record.writeUInt32BE(crc32c(json) >>> 0, 4);
  json.copy(record, RECORD_HEADER_BYTES);
  return record;
}

/** Why the record at `pos` is not whole and sound, or null. */
function recordProblem(content: Buffer, pos: number): string | null {
  if (content.length - pos < RECORD_HEADER_BYTES) return `torn record header at byte ${pos}`;
  const length = content.readUInt32BE(pos);
  if (length === 0 || pos + RECORD_HEADER_BYTES + length > content.length) return `record at byte ${pos} claims ${length} bytes`;
  const body = content.subarray(pos + RECORD_HEADER_BYTES, pos + RECORD_HEADER_BYTES + length);
  if (crc32c(body) >>> 0 !== content.readUInt32BE(pos + 4)) return `record at byte ${pos} fails its CRC-32C check`;
  return null;
}

async function listFiles(dir: string): Promise<{ snapshots: number[]; logs: number[] }> {
  const snapshots: number[] = [];
  const logs: number[] = [];
  for (const name of await readdir(dir)) {
    const match = /^offsets-(\d{20})\.(log|snapshot)$/.exec(name);
    if (match === null) continue;
    (match[2] === 'log' ? logs : snapshots).push(Number(match[1]));
  }
  return { snapshots: snapshots.sort((a, b) => a - b), logs: logs.sort((a, b) => a - b) };
}

function logName(generation: number): string {
  return `offsets-${String(generation).padStart(20, '0')}.log`;
}

function snapshotName(generation: number): string {
  return `offsets-${String(generation).padStart(20, '0')}.snapshot`;
}

function key(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
