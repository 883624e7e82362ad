import { z } from 'zod';
import { compileOptions } from '../../config/index.js';
import type { TransactionContext } from '../../runtime/index.js';
import { beginGlobalTx, beginShape, participantName, type BeginOptions } from '../coordinator/begin.js';
import type { BeginInput } from '../coordinator/begin-input.js';
import { TxMode } from '../coordinator/states.js';
import { namedBranches, type Participant } from '../participant/definition.js';
import { XA_PARTICIPANT_NAME_MAX } from './gid.js';

/** One branch of a 2PC transaction: which participant and with what payload. */
export interface TwoPhaseBranch<P = unknown> {
  /** Participant name, as in `@XaParticipant('<name>')`, or its definition (`defineParticipant`): the payload is then typed and validated. */
  participant: string | Participant;
  /** What the participant needs to do its work (JSON). */
  payload: P;
}

/** Options of `beginTwoPhase`: the common begin options, the branches and how prepares are sent. */
export interface BeginTwoPhaseOptions extends BeginOptions {
  /** One branch per participant call; 1..100 branches. */
  branches: TwoPhaseBranch[];
  /**
   * How prepares are sent. `'parallel'`: to every branch at once (the
   * shortest phase one). `'sequential'`: to one branch at a time, in the
   * order of `branches`, the next after the previous voted yes; a no ends
   * phase one, and the branches not asked yet are cancelled without a
   * message. Sequential costs a hop per branch but rules out a deadlock no
   * database can see: with parallel prepares, order A's first branch can hold
   * a row while its second waits for a row that order B's second branch
   * holds, B's first waiting for A's — each prepared branch keeps its locks
   * until the decision, which needs the vote that is waiting, so only the
   * participants' lock timeout ends it (every order involved votes no after
   * `lockTimeoutMs`). Taking the branches' locks in one global order (the
   * order of `branches`, the same for every global transaction) makes such a
   * cycle impossible: choose it when participants share hot rows, as the
   * order demo's 20 products do. @default 'parallel'
   */
  prepare?: TwoPhasePrepareOrder;
}

/** Values of {@link BeginTwoPhaseOptions.prepare}. */
export const TwoPhasePrepareOrder = {
  PARALLEL: 'parallel',
  SEQUENTIAL: 'sequential',
} as const;
/** One of the {@link TwoPhasePrepareOrder} values. */
export type TwoPhasePrepareOrder = (typeof TwoPhasePrepareOrder)[keyof typeof TwoPhasePrepareOrder];

const schema = z.strictObject({
  ...beginShape,
  branches: z
    .array(z.strictObject({ participant: participantName(XA_PARTICIPANT_NAME_MAX), payload: z.unknown() }))
    .min(1, 'needs at least one branch')
    .max(100),
  prepare: z.enum([TwoPhasePrepareOrder.PARALLEL, TwoPhasePrepareOrder.SEQUENTIAL]).default(TwoPhasePrepareOrder.PARALLEL),
});

/**
 * Begins a 2PC global transaction inside the caller's database transaction:
 * the global transaction and its branches are stored and a prepare command
 * is written to the outbox for each participant, so nothing happens unless
 * the caller's transaction commits (with `prepare: 'sequential'`, for the
 * first branch only; the others are asked one by one). The coordinator
 * collects the votes until `timeoutMs`, decides, and sends commit or rollback.
 *
 * @returns the global transaction ID.
 * Every payload must be JSON (checked at compile time: see {@link BeginInput}).
 * A branch whose participant is given by definition (`defineParticipant`)
 * has its payload typed from the schema's input and validated here.
 *
 * @throws ConcordatError CONFIG_INVALID naming the bad option.
 * @throws ValidationError VALIDATION_FAILED naming the branch whose payload its participant's schema refuses; nothing is stored.
 */
export async function beginTwoPhase<I extends BeginTwoPhaseOptions>(context: TransactionContext, input: BeginInput<I, BeginTwoPhaseOptions>): Promise<string> {
  const { branches, prepare, ...options } = compileOptions(
    schema,
    { ...(input as object), branches: await namedBranches((input as { branches?: unknown } | undefined)?.branches, 'twoPhase.branches') },
    'twoPhase',
  );
  return beginGlobalTx(context, TxMode.TWO_PHASE, { ...options, sequential: prepare === TwoPhasePrepareOrder.SEQUENTIAL }, branches);
}
