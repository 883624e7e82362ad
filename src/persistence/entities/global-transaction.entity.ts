import { Column, Entity, OneToMany, PrimaryColumn } from 'typeorm';
import { BranchEntity } from './branch.entity.js';

/** A row of `concordat.global_transaction`: one TCC, 2PC or saga global transaction. */
@Entity({ schema: 'concordat', name: 'global_transaction' })
export class GlobalTransactionEntity {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ type: 'text' })
  mode!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'text' })
  state!: string;

  @Column({ type: 'timestamptz' })
  deadline!: Date;

  @Column({ type: 'jsonb', nullable: true })
  payload!: unknown;

  @Column({ type: 'text', name: 'outcome_topic', nullable: true })
  outcomeTopic!: string | null;

  @Column({ type: 'text', name: 'outcome_key', nullable: true })
  outcomeKey!: string | null;

  @Column({ type: 'text', nullable: true })
  reason!: string | null;

  @Column({ type: 'timestamptz', name: 'created_at' })
  createdAt!: Date;

  @Column({ type: 'timestamptz', name: 'updated_at' })
  updatedAt!: Date;

  @Column({ type: 'timestamptz', name: 'ended_at', nullable: true })
  endedAt!: Date | null;

  @Column({ type: 'timestamptz', name: 'resend_at', nullable: true })
  resendAt!: Date | null;

  @Column({ type: 'integer', name: 'resend_count' })
  resendCount!: number;

  @OneToMany(() => BranchEntity, (branch) => branch.globalTransaction)
  branches!: BranchEntity[];
}
