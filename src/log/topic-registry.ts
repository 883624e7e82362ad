import { join } from 'node:path';
import type { TopicConfig } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint-file.js';

/** One topic in `topics.json`: its name, partition count, config, creation time (epoch ms) and stored configs. */
export interface TopicRecord {
  name: string;
  partitions: number;
  config: TopicConfig;
  createdAtMs: number;
  /**
   * Configs kept with the topic that the log does not act on, by name: the
   * broker stores here the Kafka topic configs it accepts without a
   * {@link TopicConfig} field (e.g. `delete.retention.ms`). Absent when none.
   */
  extraConfigs?: Record<string, string>;
}

const KIND = 'topics';
/** Name of the topic registry in the data directory. */
export const TOPIC_REGISTRY_FILE = 'topics.json';

/**
 * The list of topics, their partition counts and configs: `<dataDir>/topics.json`,
 * a checkpoint file (checkpoint-file.ts) replaced atomically on every
 * create and delete. It is the commit point of both: a topic exists when
 * it is in this file. On open, a listed partition whose directory is missing
 * gets an empty one (a crash between the registry write and the mkdir), and
 * a partition directory of an unlisted topic is removed (a crash between
 * the registry write and the removal).
 *
 * Body: `{ "topics": [{ "name", "partitions", "config": TopicConfig, "createdAtMs", "extraConfigs"? }] }`.
 * CreatePartitions and config changes replace a topic's entry the same way.
 */
export class TopicRegistry {
  private constructor(
    private readonly path: string,
    private readonly records: Map<string, TopicRecord>,
    /** Whether the file existed when opened. */
    readonly existed: boolean,
  ) {}

  /**
   * Reads `<dataDir>/topics.json` (none: no topics, and {@link existed} is false).
   * @throws ConcordatError STORAGE_CORRUPT when the file is damaged
   */
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

  /** Every topic, in the order they were created or last replaced. */
  list(): TopicRecord[] {
    return [...this.records.values()];
  }

  /** The topic's record, or undefined. */
  get(name: string): TopicRecord | undefined {
    return this.records.get(name);
  }

  /**
   * Adds or replaces a topic, durably (the file is replaced atomically;
   * checkpoint-file.ts). Not to be overlapped with another put or remove:
   * each writes the list as it was when called, so one would undo the
   * other; LogManager runs topic changes one at a time. On failure the file
   * and the in-memory list stay as they were.
   * @throws ConcordatError KAFKA_STORAGE_ERROR (retriable) when the disk is full; other write errors as the OS gave them
   */
  async put(record: TopicRecord): Promise<void> {
    const next = new Map(this.records);
    next.set(record.name, record);
    await this.persist(next);
  }

  /** Removes a topic, durably; the same contract as {@link put}. */
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
