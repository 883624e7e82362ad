import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A row of `concordat.inbox`: `messageId` was processed by `consumer`. */
@Entity({ schema: 'concordat', name: 'inbox' })
export class InboxEntryEntity {
  @PrimaryColumn({ type: 'text' })
  consumer!: string;

  @PrimaryColumn({ type: 'text', name: 'message_id' })
  messageId!: string;

  @Column({ type: 'timestamptz', name: 'processed_at' })
  processedAt!: Date;
}
