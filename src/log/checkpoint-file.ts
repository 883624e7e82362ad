/**
 * Small metadata files replaced atomically: the topic registry
 * (`topics.json`) and the consumer groups' committed offsets
 * (`.groups/<sha256(groupId)>.offsets`).
 *
 * Bytes: one header line, then a JSON body.
 * ```
 * concordat-checkpoint <kind> v1 length=<body bytes> crc32c=<8 hex digits of the body's CRC-32C>\n
 * <JSON body>
 * ```
 * A write goes to `<path>.tmp`, is fsynced, renamed over `<path>`, and the
 * directory is fsynced, so after a crash the file holds either the old or
 * the new content, never a mix (rename(2) is atomic; the directory sync makes
 * the rename itself durable). The header's length and CRC catch what
 * atomicity cannot: a file damaged on disk or edited by hand is reported
 * (STORAGE_CORRUPT), never half-read. A leftover `.tmp` is ignored.
 *
 * @module
 */

import { crc32c } from '@node-rs/crc32';
import { dirname, resolve } from 'node:path';
import { ConcordatError, ErrorCode } from '../errors.js';
import { logFs } from './file-system.js';
import { openFile, readWholeFile } from './open-file.js';
import { isDiskFull, storageWriteError } from './storage-error.js';

const VERSION = 'v1';

/**
 * Replaces the checkpoint at `path` with `body`: temp file, fdatasync,
 * rename, directory fsync. On failure the previous content stays and the
 * temp file is removed (on a full disk it would hold the space the next
 * try needs).
 * @throws ConcordatError KAFKA_STORAGE_ERROR (retriable) when the disk is full; other write errors as the OS gave them
 */
export async function writeCheckpoint(path: string, kind: string, body: unknown): Promise<void> {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  const header = `concordat-checkpoint ${kind} ${VERSION} length=${json.length} crc32c=${hex(crc32c(json))}\n`;
  const temp = `${path}.tmp`;
  try {
    const file = await openFile(temp, 'w');
    try {
      await file.writeFile(Buffer.concat([Buffer.from(header, 'utf8'), json]));
      await file.datasync();
    } finally {
      await file.close();
    }
    await logFs().rename(temp, path);
  } catch (error) {
    await logFs()
      .rm(temp, { force: true })
      .catch(() => {});
    if (isDiskFull(error)) throw storageWriteError(`writing ${kind} checkpoint ${path}`, 'its previous content is kept', dirname(path), error);
    throw error;
  }
  await fsyncDir(dirname(path));
}

/** The body of the checkpoint at `path`, or null when there is none. @throws ConcordatError STORAGE_CORRUPT */
export async function readCheckpoint(path: string, kind: string): Promise<unknown> {
  let content: Buffer;
  try {
    content = await readWholeFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const newline = content.indexOf(0x0a);
  const header = newline < 0 ? '' : content.subarray(0, newline).toString('utf8');
  const match = /^concordat-checkpoint (\S+) (\S+) length=(\d+) crc32c=([0-9a-f]{8})$/.exec(header);
  if (match === null) throw corrupt(path, 'the header line is missing or malformed');
  if (match[1] !== kind || match[2] !== VERSION) throw corrupt(path, `expected kind ${kind} ${VERSION}, found ${match[1]} ${match[2]}`);
  const body = content.subarray(newline + 1);
  if (body.length !== Number(match[3])) throw corrupt(path, `the body has ${body.length} bytes, the header says ${match[3]}`);
  if (hex(crc32c(body)) !== match[4]) throw corrupt(path, 'the body fails its CRC-32C check');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw corrupt(path, `the body is not JSON (${(error as Error).message})`);
  }
}

/** Removes a checkpoint and makes the removal durable. */
export async function removeCheckpoint(path: string): Promise<void> {
  await logFs().rm(path, { force: true });
  await fsyncDir(dirname(path));
}

/**
 * Creates `dir` and any missing parents (mkdir -p), making each new entry
 * durable by an fsync of the directory that holds it, as Kafka does for a
 * new log directory: a directory's own entry lives in its parent, so
 * without that a power loss could take the whole directory, and every
 * file synced inside it, with it.
 */
export async function makeDurableDir(dir: string): Promise<void> {
  const first = await logFs().mkdir(dir, { recursive: true });
  if (first === undefined) return;
  const created: string[] = [];
  for (let at = resolve(dir); ; at = dirname(at)) {
    created.unshift(at);
    if (at === resolve(first) || dirname(at) === at) break;
  }
  for (const path of created) await fsyncDir(dirname(path));
}

/** fsync of a directory, so that creations, renames and removals in it survive a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await openFile(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function hex(value: number): string {
  return (value >>> 0).toString(16).padStart(8, '0');
}

function corrupt(path: string, detail: string): ConcordatError {
  return new ConcordatError(`checkpoint ${path} is corrupt: ${detail}`, {
    code: ErrorCode.STORAGE_CORRUPT,
    context: { path },
  });
}
