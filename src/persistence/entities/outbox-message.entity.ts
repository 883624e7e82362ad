import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A row of `concordat.outbox`: one message waiting for the relay. See migration 0001. */
@Entity({ schema: 'concordat', name: 'outbox' })
export class OutboxMessageEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  seq!: string;

  @Column({ type: 'text', name: 'message_id' })
  messageId!: string;

  @Column({ type: 'text' })
  topic!: string;

  @Column({ type: 'text', name: 'partition_key', nullable: true })
  partitionKey!: string | null;

  @Column({ type: 'smallint' })
  shard!: number;

  @Column({ type: 'jsonb' })
  headers!: Record<string, string>;

  @Column({ type: 'bytea', nullable: true })
  payload!: Buffer | null;

  @Column({ type: 'timestamptz', name: 'created_at' })
  createdAt!: Date;
}
