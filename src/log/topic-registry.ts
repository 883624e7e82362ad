import { join } from 'node:path';
import type { TopicConfig } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint-file.js';

/**
 * The list of topics, their partition counts and configs: `<dataDir>/topics.json`,
 * a checkpoint file (checkpoint-file.ts) replaced atomically on every
 * create and delete. It is the commit point of both: a topic exists when
 * it is in this file. On open, a listed partition whose directory is missing
 * gets an empty one (a crash between the registry write and the mkdir), and
 * a partition directory of an unlisted topic is removed (a crash between
 * the registry write and the removal).
 *
 * Body: `{ "topics": [{ "name", "partitions", "config": TopicConfig, "createdAtMs" }] }`.
 */
export interface TopicRecord {
  name: string;
  partitions: number;
  config: TopicConfig;
  createdAtMs: number;
}

const KIND = 'topics';
export const TOPIC_REGISTRY_FILE = 'topics.json';

export class TopicRegistry {
  private constructor(
    private readonly path: string,
    private readonly records: Map<string, TopicRecord>,
    /** Whether the file existed when opened. */
    readonly existed: boolean,
  ) {}

  static async open(dataDir: string): Promise<TopicRegistry> {
    const path = join(dataDir, TOPIC_REGISTRY_FILE);
    const body = await readCheckpoint(path, KIND);
    if (body === null) return new TopicRegistry(path, new Map(), false);
    const topics = (body as { topics?: unknown }).topics;
    if (!Array.isArray(topics)) {
      throw new ConcordatError(`checkpoint ${path} is corrupt: no topics array`, { code: ErrorCode.STORAGE_CORRUPT });
    }
    const records = new Map<string, TopicRecord>();
    for (const record of topics as TopicRecord[]) records.set(record.name, record);
    return new TopicRegistry(path, records, true);
  }

  list(): TopicRecord[] {
    return [...this.records.values()];
  }

  get(name: string): TopicRecord | undefined {
    return this.records.get(name);
  }

  /** Adds or replaces a topic, durably. */
  async put(record: TopicRecord): Promise<void> {
    const next = new Map(this.records);
    next.set(record.name, record);
    await this.persist(next);
  }

  /** Removes a topic, durably. */
  async remove(name: string): Promise<void> {
    const next = new Map(this.records);
    next.delete(name);
    await this.persist(next);
  }

  private async persist(next: Map<string, TopicRecord>): Promise<void> {
    await writeCheckpoint(this.path, KIND, { topics: [...next.values()] });
    this.records.clear();
    for (const [name, record] of next) this.records.set(name, record);
  }
}
