import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OffsetIndex } from '../../../src/log/offset-index.js';
import { TimeIndex } from '../../../src/log/time-index.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concordat-index-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('OffsetIndex', () => {
  it('finds the largest entry at or below the target, or the segment start', () => {
    const index = OffsetIndex.empty(join(dir, 'i.index'), 1000, 100);
    index.append(1010, 4096);
    index.append(1025, 8300);
    index.append(1040, 12500);
    expect(index.lookup(999)).toEqual({ offset: 1000, position: 0 });
    expect(index.lookup(1000)).toEqual({ offset: 1000, position: 0 });
    expect(index.lookup(1009)).toEqual({ offset: 1000, position: 0 });
    expect(index.lookup(1010)).toEqual({ offset: 1010, position: 4096 });
    expect(index.lookup(1024)).toEqual({ offset: 1010, position: 4096 });
    expect(index.lookup(1025)).toEqual({ offset: 1025, position: 8300 });
    expect(index.lookup(10_000)).toEqual({ offset: 1040, position: 12500 });
  });

  it('writes fixed 8-byte entries (relative offset u32, position u32) when flushed, and loads them back', async () => {
    const path = join(dir, 'i.index');
    const index = OffsetIndex.empty(path, 5000, 100);
    index.append(5003, 100);
    index.append(5010, 300);
    await index.flush();
    expect([...(await readFile(path))]).toEqual([0, 0, 0, 3, 0, 0, 0, 100, 0, 0, 0, 10, 0, 0, 1, 44]);
    index.append(5020, 700);
    await index.flush();
    expect((await readFile(path)).length).toBe(24);
    const loaded = await OffsetIndex.load(path, 5000, 100, 1000);
    expect(loaded!.entryCount).toBe(3);
    expect(loaded!.lookup(5011)).toEqual({ offset: 5010, position: 300 });
  });

  it('cuts its file when entries were dropped', async () => {
    const path = join(dir, 'i.index');
    const index = OffsetIndex.empty(path, 0, 10);
    index.append(1, 10);
    index.append(2, 20);
    await index.flush();
    index.truncateToPosition(20);
    await index.flush();
    expect([...(await readFile(path))]).toEqual([0, 0, 0, 1, 0, 0, 0, 10]);
  });

  it('asserts that entries increase', () => {
    const index = OffsetIndex.empty(join(dir, 'i.index'), 0, 100);
    index.append(10, 100);
    expect(() => index.append(10, 200)).toThrow('index entry (10, 200) does not follow (10, 100)');
    expect(() => index.append(11, 100)).toThrow('index entry (11, 100) does not follow (10, 100)');
  });

  it('reports full at entriesMax', () => {
    const index = OffsetIndex.empty(join(dir, 'i.index'), 0, 2);
    index.append(1, 10);
    index.append(2, 20);
    expect(index.isFull()).toBe(true);
    expect(() => index.append(3, 30)).toThrow(`offset index ${join(dir, 'i.index')} is full (2 entries)`);
  });

  it('drops entries at or past a truncation point', () => {
    const index = OffsetIndex.empty(join(dir, 'i.index'), 0, 10);
    index.append(1, 10);
    index.append(2, 20);
    index.append(3, 30);
    index.truncateToPosition(20);
    expect(index.lastEntry()).toEqual({ offset: 1, position: 10 });
  });

  it.each([
    ['a size that is not a multiple of 8', Buffer.from([0, 0, 0, 1, 0, 0, 0])],
    ['decreasing offsets', Buffer.from([0, 0, 0, 5, 0, 0, 0, 10, 0, 0, 0, 4, 0, 0, 0, 20])],
    ['a position past the log', Buffer.from([0, 0, 0, 5, 0, 0, 0x10, 0])],
    ['zeros', Buffer.alloc(16)],
  ])('refuses to load an index with %s (so it is rebuilt)', async (_, content) => {
    const path = join(dir, 'bad.index');
    await writeFile(path, content);
    expect(await OffsetIndex.load(path, 0, 100, 1000)).toBeNull();
  });

  it('treats a missing index file as one to rebuild', async () => {
    expect(await OffsetIndex.load(join(dir, 'missing.index'), 0, 100, 1000)).toBeNull();
  });
});

describe('TimeIndex', () => {
  it('adds an entry only when the timestamp grows, and finds the last entry below a timestamp', () => {
    const index = TimeIndex.empty(join(dir, 't.timeindex'), 100, 10);
    index.maybeAppend(1000, 104);
    index.maybeAppend(1000, 110);
    index.maybeAppend(990, 115);
    index.maybeAppend(2000, 120);
    index.maybeAppend(3000, 130);
    expect(index.entryCount).toBe(3);
    expect(index.lookupBefore(1000)).toBeNull();
    expect(index.lookupBefore(1001)).toEqual({ timestampMs: 1000, offset: 104 });
    expect(index.lookupBefore(2000)).toEqual({ timestampMs: 1000, offset: 104 });
    expect(index.lookupBefore(2500)).toEqual({ timestampMs: 2000, offset: 120 });
    expect(index.lookupBefore(9999)).toEqual({ timestampMs: 3000, offset: 130 });
    expect(() => index.maybeAppend(4000, 125)).toThrow('time index entry (4000, 125) goes back from offset 130');
  });

  it('writes 12-byte entries (timestamp i64, relative offset u32) and keeps one slot for the entry written at roll', async () => {
    const path = join(dir, 't.timeindex');
    const index = TimeIndex.empty(path, 100, 2);
    index.maybeAppend(1_700_000_000_000, 101);
    index.maybeAppend(1_700_000_000_500, 102);
    expect(index.isFull()).toBe(true);
    index.maybeAppend(1_700_000_000_900, 103);
    expect(index.entryCount).toBe(2);
    index.maybeAppend(1_700_000_000_900, 103, true);
    expect(index.entryCount).toBe(3);
    await index.flush();
    const bytes = await readFile(path);
    expect(bytes.length).toBe(36);
    expect(bytes.subarray(24)).toEqual(Buffer.from([0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x6b, 0x84, 0, 0, 0, 3]));
    expect(await TimeIndex.loadLastEntry(path, 100, 2, 104)).toEqual({ timestampMs: 1_700_000_000_900, offset: 103 });
    expect(await TimeIndex.loadLastEntry(path, 100, 2, 103)).toBeNull();
    expect((await TimeIndex.load(path, 100, 2, 104))!.entryCount).toBe(3);
  });

  it.each([
    ['a size that is not a multiple of 12', Buffer.alloc(13)],
    ['timestamps that do not grow', Buffer.concat([entry(5, 1), entry(5, 2)])],
    ['offsets that go back', Buffer.concat([entry(5, 2), entry(6, 1)])],
    ['an offset past the segment', entry(5, 50)],
  ])('refuses to load a time index with %s', async (_, content) => {
    const path = join(dir, 'bad.timeindex');
    await writeFile(path, content);
    expect(await TimeIndex.load(path, 0, 100, 10)).toBeNull();
  });

  it('reads an empty file as no timestamps and a missing one as to rebuild', async () => {
    const path = join(dir, 'empty.timeindex');
    await writeFile(path, Buffer.alloc(0));
    expect(await TimeIndex.loadLastEntry(path, 0, 10, 5)).toBe('empty');
    expect(await TimeIndex.loadLastEntry(join(dir, 'missing.timeindex'), 0, 10, 5)).toBeNull();
  });
});

function entry(timestamp: number, relativeOffset: number): Buffer {
  const buf = Buffer.alloc(12);
  buf.writeBigInt64BE(BigInt(timestamp), 0);
  buf.writeUInt32BE(relativeOffset, 8);
  return buf;
}

describe('IndexEntries.flush while the index changes', () => {
  it('keeps entries appended during a flush for the next one, so the file always loads', async () => {
    const path = join(dir, '00000000000000000000.index');
    const index = OffsetIndex.empty(path, 0, 1_000_000);
    for (let i = 0; i < 10; i++) index.append(i * 10, i * 4096);
    // Appends one entry per event-loop turn while the flush awaits its file operations, as a partition's writer does
    // while its recovery checkpoint flushes (before the fix, these entries were counted as written without being written).
    let done = false;
    const flushing = index.flush().then(() => (done = true));
    let next = 10;
    while (!done) {
      await new Promise((resolve) => setImmediate(resolve));
      if (!done) index.append(next * 10, next++ * 4096);
    }
    await flushing;
    expect(next).toBeGreaterThan(10); // the race happened
    await index.flush();
    const bytes = await readFile(path);
    expect(bytes.length).toBe(next * 8);
    for (let i = 1; i < next; i++) expect([bytes.readUInt32BE(i * 8), bytes.readUInt32BE(i * 8 + 4)]).toEqual([i * 10, i * 4096]);
    const loaded = await OffsetIndex.load(path, 0, 1_000_000, next * 4096);
    expect(loaded?.entryCount).toBe(next);
  });

  it('runs overlapping flushes one after the other, so the file is never cut below what was written', async () => {
    const path = join(dir, '00000000000000000000.index');
    const index = OffsetIndex.empty(path, 0, 1_000_000);
    const flushes: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      index.append(i * 10, i * 4096);
      flushes.push(index.flush());
    }
    await Promise.all(flushes);
    expect((await readFile(path)).length).toBe(50 * 8);
    expect((await OffsetIndex.load(path, 0, 1_000_000, 50 * 4096))?.entryCount).toBe(50);
  });

  it('cuts the file again after a truncation that happened during a flush', async () => {
    const path = join(dir, '00000000000000000000.index');
    const index = OffsetIndex.empty(path, 0, 1_000_000);
    for (let i = 0; i < 20; i++) index.append(i * 10, i * 4096);
    const flushing = index.flush();
    index.truncateToEntries(5);
    index.append(500, 5 * 4096);
    await flushing;
    await index.flush();
    const bytes = await readFile(path);
    expect(bytes.length).toBe(6 * 8);
    expect([bytes.readUInt32BE(5 * 8), bytes.readUInt32BE(5 * 8 + 4)]).toEqual([500, 5 * 4096]);
  });
});
