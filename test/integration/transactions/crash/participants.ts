import { nonRetriable } from '../../../../src/errors.js';
import { Service } from '../../../../src/runtime/index.js';
import {
  Cancel,
  Compensate,
  Confirm,
  Prepare,
  SagaParticipant,
  Step,
  TccParticipant,
  Try,
  XaParticipant,
  type BranchContext,
  type SagaContext,
  type TccContext,
  type XaContext,
} from '../../../../src/transactions/index.js';

/**
 * The participants of the crash tests, one class per mode and name. Each
 * records what it did in `effects` through the transaction it was given, so
 * only committed effects are counted; a branch whose ID is the payload's
 * `refuse` votes no (a saga step fails for good).
 */
export interface CrashPayload {
  refuse?: number;
}

const record = (context: BranchContext<CrashPayload>, name: string, action: string): Promise<unknown> =>
  context.manager.query(`INSERT INTO effects (global_tx_id, branch_id, participant, action) VALUES ($1, $2, $3, $4)`, [
    context.globalTxId,
    context.branchId,
    name,
    action,
  ]);

const refuse = (context: BranchContext<CrashPayload>, name: string): void => {
  if (context.payload.refuse === context.branchId) throw nonRetriable(new Error(`${name} refuses branch ${context.branchId}`));
};

function tcc(name: string): Function {
  @Service(name)
  @TccParticipant(name)
  class Participant {
    @Try()
    async try(context: TccContext<CrashPayload>): Promise<void> {
      await record(context, name, 'try');
      refuse(context, name);
    }
    @Confirm()
    async confirm(context: TccContext<CrashPayload>): Promise<void> {
      await record(context, name, 'confirm');
    }
    @Cancel()
    async cancel(context: TccContext<CrashPayload>): Promise<void> {
      await record(context, name, 'cancel');
    }
  }
  return Participant;
}

function xa(name: string): Function {
  @Service(name)
  @XaParticipant(name)
  class Participant {
    @Prepare()
    async work(context: XaContext<CrashPayload>): Promise<void> {
      await record(context, name, 'work');
      refuse(context, name);
    }
  }
  return Participant;
}

function saga(name: string): Function {
  @Service(name)
  @SagaParticipant(name)
  class Participant {
    @Step()
    async step(context: SagaContext<CrashPayload>): Promise<void> {
      await record(context, name, 'step');
      refuse(context, name);
    }
    @Compensate()
    async compensate(context: SagaContext<CrashPayload>): Promise<void> {
      await record(context, name, 'compensate');
    }
  }
  return Participant;
}

export type CrashMode = 'tcc' | '2pc' | 'saga';

export function participantClass(mode: CrashMode, name: string): Function {
  switch (mode) {
    case 'tcc':
      return tcc(name);
    case '2pc':
      return xa(name);
    case 'saga':
      return saga(name);
  }
}
