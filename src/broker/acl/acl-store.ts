import { join } from 'node:path';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { readCheckpoint, writeCheckpoint } from '../../log/index.js';
import { bindingKey, bindingProblem, filterMatches, type AclBinding, type AclBindingFilter } from './acl.js';

const KIND = 'acls';
/** Name of the ACL file in the log's data directory. */
export const ACL_FILE = 'acls.json';

/**
 * The broker's ACLs, kept in `<dataDir>/acls.json` beside the topic
 * registry (`topics.json`), as the same kind of checkpoint file
 * (src/log/checkpoint-file.ts: header line with length and CRC-32C, JSON
 * body; replaced by temp file, fdatasync, rename and directory fsync, so
 * after a crash it holds the old or the new list, never a mix).
 *
 * Body: `{ "acls": [AclBinding, ...] }`, each binding once.
 *
 * Contract: {@link add} and {@link remove} change the list in memory only
 * once their write is durable, and run one at a time in call order (a
 * second call waits for the first), so a reader never sees an ACL that a
 * crash could take back. On a failed write the list in memory is
 * unchanged and the error is thrown. {@link list} may run at any time.
 */
export class AclStore {
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private bindings: readonly AclBinding[],
  ) {}

  /**
   * Reads `<dataDir>/acls.json` (none: no ACLs).
   * @throws ConcordatError STORAGE_CORRUPT when the file is damaged or holds an ACL that breaks the rules
   */
  static async open(dataDir: string): Promise<AclStore> {
    const path = join(dataDir, ACL_FILE);
    const body = await readCheckpoint(path, KIND);
    if (body === null) return new AclStore(path, []);
    const acls = (body as { acls?: unknown }).acls;
    if (!Array.isArray(acls)) throw new ConcordatError(`checkpoint ${path} is corrupt: no acls array`, { code: ErrorCode.STORAGE_CORRUPT });
    for (const [index, binding] of (acls as AclBinding[]).entries()) {
      const problem = bindingProblem(binding);
      if (problem !== null) throw new ConcordatError(`checkpoint ${path} is corrupt: acls.${index}: ${problem}`, { code: ErrorCode.STORAGE_CORRUPT });
    }
    return new AclStore(path, acls as AclBinding[]);
  }

  /** Every ACL now (do not modify). */
  list(): readonly AclBinding[] {
    return this.bindings;
  }

  /** Adds the bindings not already stored, durably. @throws the write's error (nothing added) */
  add(bindings: readonly AclBinding[]): Promise<void> {
    return this.serialize(async () => {
      const keys = new Set(this.bindings.map(bindingKey));
      const next = [...this.bindings];
      for (const binding of bindings) {
        const key = bindingKey(binding);
        if (keys.has(key)) continue;
        keys.add(key);
        next.push({ ...binding });
      }
      if (next.length === this.bindings.length) return;
      await writeCheckpoint(this.path, KIND, { acls: next });
      this.bindings = next;
    });
  }

  /**
   * Removes every binding that matches one of `filters`, durably.
   * @returns per filter, the bindings it matched (a binding matched by two filters is listed under both, as Kafka does)
   * @throws the write's error (nothing removed)
   */
  remove(filters: readonly AclBindingFilter[]): Promise<AclBinding[][]> {
    return this.serialize(async () => {
      const matched = filters.map((filter) => this.bindings.filter((binding) => filterMatches(filter, binding)));
      const removed = new Set(matched.flat());
      if (removed.size === 0) return matched;
      const next = this.bindings.filter((binding) => !removed.has(binding));
      await writeCheckpoint(this.path, KIND, { acls: next });
      this.bindings = next;
      return matched;
    });
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.writing.then(work, work);
    this.writing = run.catch(() => {});
    return run;
  }
}
