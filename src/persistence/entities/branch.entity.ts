import { Column, Entity, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import type { GlobalTransactionEntity } from './global-transaction.entity.js';

/** A row of `concordat.branch`: one participant's part in a global transaction. */
@Entity({ schema: 'concordat', name: 'branch' })
export class BranchEntity {
  @PrimaryColumn({ type: 'uuid', name: 'global_tx_id' })
  globalTxId!: string;

  @PrimaryColumn({ type: 'integer', name: 'branch_id' })
  branchId!: number;

  @Column({ type: 'text' })
  participant!: string;

  @Column({ type: 'text' })
  state!: string;

  @Column({ type: 'jsonb', nullable: true })
  payload!: unknown;

  @Column({ type: 'jsonb', nullable: true })
  result!: unknown;

  @Column({ type: 'text', nullable: true })
  error!: string | null;

  @Column({ type: 'timestamptz', name: 'updated_at' })
  updatedAt!: Date;

  @ManyToOne('GlobalTransactionEntity', 'branches', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'global_tx_id' })
  globalTransaction!: GlobalTransactionEntity;
}
