import { join } from 'node:path';
import { ConcordatError, ErrorCode } from '../errors.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint-file.js';

/** Name of the producer-ID block file in the data directory. */
export const PRODUCER_IDS_FILE = 'producer-ids';
const KIND = 'producer-ids';
const BLOCK_SIZE = 1000;

/**
 * Producer IDs for InitProducerId (idempotent producers, KIP-98), never
 * handed out twice, across restarts too: partitions remember each
 * producer's sequences, so a new producer given an old ID would see its
 * first batch refused as out of order (or, worse, taken for a retry).
 *
 * Like Kafka's producer-ID blocks (KIP-730), IDs are reserved in blocks of
 * {@link BLOCK_SIZE}: before the first ID of a block is handed out, the end
 * of the block is written durably to `<dataDir>/producer-ids` (a checkpoint
 * file, checkpoint-file.ts; body `{ "nextBlockStart": n }`). A crash loses
 * the unused rest of a block, never reuses an ID. Epochs start at 0;
 * transactions, which bump epochs, are not served.
 */
export class ProducerIdAllocator {
  private next: number;
  private blockEnd: number;
  private reserving: Promise<void> | null = null;

  private constructor(
    private readonly path: string,
    nextBlockStart: number,
  ) {
    this.next = nextBlockStart;
    this.blockEnd = nextBlockStart;
  }

  /**
   * Reads `<dataDir>/producer-ids` (none: IDs start at 0).
   * @throws ConcordatError STORAGE_CORRUPT when the file is damaged
   */
  static async open(dataDir: string): Promise<ProducerIdAllocator> {
    const path = join(dataDir, PRODUCER_IDS_FILE);
    const body = (await readCheckpoint(path, KIND)) as { nextBlockStart?: unknown } | null;
    if (body === null) return new ProducerIdAllocator(path, 0);
    if (!Number.isSafeInteger(body.nextBlockStart) || (body.nextBlockStart as number) < 0) {
      throw new ConcordatError(`checkpoint ${path} is corrupt: nextBlockStart is not a non-negative integer`, { code: ErrorCode.STORAGE_CORRUPT });
    }
    return new ProducerIdAllocator(path, body.nextBlockStart as number);
  }

  /** A producer ID never handed out before, with epoch 0. */
  async allocate(): Promise<{ producerId: number; producerEpoch: number }> {
    while (this.next >= this.blockEnd) {
      this.reserving ??= this.reserveBlock().finally(() => {
        this.reserving = null;
      });
      await this.reserving;
    }
    return { producerId: this.next++, producerEpoch: 0 };
  }

  private async reserveBlock(): Promise<void> {
    const end = this.blockEnd + BLOCK_SIZE;
    await writeCheckpoint(this.path, KIND, { nextBlockStart: end });
    this.next = this.blockEnd;
    this.blockEnd = end;
  }
}
