import type { Delivery, DeliveryBatchHandler, OutgoingRecord, PublishAck, SubscribeOptions, Subscription, TopicSpec, Transport } from '../transport/index.js';

/** What a {@link FaultyTransport} did so far. */
export interface FaultyTransportStats {
  /** `publish` calls, failed ones included. */
  publishes: number;
  /** Records the inner transport acknowledged (duplicates included). */
  recordsWritten: number;
  publishesFailed: number;
  publishesDroppedMidBatch: number;
  acksLost: number;
  /** Extra deliveries made by `deliverTwice`. */
  deliveriesRepeated: number;
  /** Deliveries whose handler succeeded but were reported failed (`dropAfterHandling`). */
  deliveriesDropped: number;
}

/** Thrown by a {@link FaultyTransport} where it injects a fault. */
export class InjectedTransportFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InjectedTransportFault';
  }
}

/**
 * A fault seam around a real transport: it passes everything through to the
 * transport it wraps and, when told, fails the way a network connection to
 * the log fails. Give it to `ConcordatApp.create({ transport })` (or to an
 * `OutboxRelay`) in a test.
 *
 * Publishing side (what the outbox relay sees):
 * - {@link failPublishes}: the log is unreachable; nothing is written.
 * - {@link dropPublishesMidBatch}: the connection drops mid-batch: the first
 *   half of the records (at least one) is written, then the call fails.
 * - {@link loseAcks}: everything is written, the acknowledgement is lost.
 *
 * Delivery side (what a consumer sees), for a `handler` and a
 * `batchHandler` alike (a batch counts as one delivery):
 * - {@link deliverTwice}: every record (every batch) is handed to the
 *   handler twice.
 * - {@link dropAfterHandling}: the handler's work is done (its transaction
 *   committed) and then the connection drops before the offset commit: the
 *   transport sees a failure and delivers the record (the batch) again.
 *
 * Counts are consumed as faults fire, so a test can wait for
 * `pending()` to reach zero.
 */
export class FaultyTransport implements Transport {
  readonly stats: FaultyTransportStats = {
    publishes: 0,
    recordsWritten: 0,
    publishesFailed: 0,
    publishesDroppedMidBatch: 0,
    acksLost: 0,
    deliveriesRepeated: 0,
    deliveriesDropped: 0,
  };
  private failing = 0;
  private droppingMidBatch = 0;
  private losingAcks = 0;
  private dropping = 0;
  private twice = false;

  /** The inner transport's, when it has one. */
  readonly retentionMs?: (topic: string) => Promise<number>;

  constructor(readonly inner: Transport) {
    if (inner.retentionMs !== undefined) this.retentionMs = (topic) => inner.retentionMs!(topic);
  }

  get kind(): Transport['kind'] {
    return this.inner.kind;
  }

  /** The next `count` publishes fail before writing anything. */
  failPublishes(count: number): this {
    this.failing += count;
    return this;
  }

  /** The next `count` publishes write the first half of their records (at least one), then fail. */
  dropPublishesMidBatch(count: number): this {
    this.droppingMidBatch += count;
    return this;
  }

  /** The next `count` publishes write every record, then fail as if the acknowledgement was lost. */
  loseAcks(count: number): this {
    this.losingAcks += count;
    return this;
  }

  /** Every record delivered from now on reaches the handler twice (or once again, when `false`). */
  deliverTwice(on = true): this {
    this.twice = on;
    return this;
  }

  /** The next `count` deliveries whose handler succeeds are reported failed, so the record comes again. */
  dropAfterHandling(count: number): this {
    this.dropping += count;
    return this;
  }

  /** Faults armed and not fired yet. */
  pending(): number {
    return this.failing + this.droppingMidBatch + this.losingAcks + this.dropping;
  }

  connect(): Promise<void> {
    return this.inner.connect();
  }

  ensureTopics(topics: TopicSpec[]): Promise<void> {
    return this.inner.ensureTopics(topics);
  }

  async publish(records: OutgoingRecord[]): Promise<PublishAck[]> {
    this.stats.publishes++;
    if (this.failing > 0) {
      this.failing--;
      this.stats.publishesFailed++;
      throw new InjectedTransportFault('injected: the log is unreachable');
    }
    if (this.droppingMidBatch > 0 && records.length > 0) {
      this.droppingMidBatch--;
      this.stats.publishesDroppedMidBatch++;
      const half = records.slice(0, Math.max(1, Math.floor(records.length / 2)));
      await this.inner.publish(half);
      this.stats.recordsWritten += half.length;
      throw new InjectedTransportFault(`injected: connection dropped after ${half.length} of ${records.length} records`);
    }
    const acks = await this.inner.publish(records);
    this.stats.recordsWritten += records.length;
    if (this.losingAcks > 0) {
      this.losingAcks--;
      this.stats.acksLost++;
      throw new InjectedTransportFault('injected: acknowledgement lost');
    }
    return acks;
  }

  subscribe(options: SubscribeOptions): Promise<Subscription> {
    const { handler, batchHandler } = options;
    if (batchHandler !== undefined) return this.inner.subscribe({ ...options, batchHandler: this.faulty(batchHandler) });
    if (handler === undefined) return this.inner.subscribe(options); // the inner transport refuses it
    const faulty = this.faulty(async (deliveries) => handler(deliveries[0]!));
    return this.inner.subscribe({ ...options, handler: (delivery: Delivery) => faulty([delivery]) });
  }

  /** The delivery faults around a handler of one record or of a batch. */
  private faulty(handler: DeliveryBatchHandler): DeliveryBatchHandler {
    return async (deliveries) => {
      await handler(deliveries);
      if (this.twice) {
        this.stats.deliveriesRepeated += deliveries.length;
        await handler(deliveries);
      }
      if (this.dropping > 0) {
        this.dropping--;
        this.stats.deliveriesDropped++;
        throw new InjectedTransportFault('injected: connection dropped before the offset commit');
      }
    };
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
