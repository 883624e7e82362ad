import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A row of `concordat.fence`: what a TCC participant did for one branch (TRIED, CONFIRMED, CANCELLED). */
@Entity({ schema: 'concordat', name: 'fence' })
export class FenceEntity {
  @PrimaryColumn({ type: 'text' })
  participant!: string;

  @PrimaryColumn({ type: 'uuid', name: 'global_tx_id' })
  globalTxId!: string;

  @PrimaryColumn({ type: 'integer', name: 'branch_id' })
  branchId!: number;

  @Column({ type: 'text' })
  state!: string;

  @Column({ type: 'timestamptz', name: 'created_at' })
  createdAt!: Date;

  @Column({ type: 'timestamptz', name: 'updated_at' })
  updatedAt!: Date;
}
