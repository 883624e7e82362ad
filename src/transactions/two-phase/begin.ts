import { z } from 'zod';
import { compileOptions } from '../../config/index.js';
import type { TransactionContext } from '../../runtime/index.js';
import { beginGlobalTx, beginShape, participantName, type BeginOptions } from '../coordinator/begin.js';
import { TxMode } from '../coordinator/states.js';
import { XA_PARTICIPANT_NAME_MAX } from './gid.js';

export interface TwoPhaseBranch<P = unknown> {
  /** Participant name, as in `@XaParticipant('<name>')`. */
  participant: string;
  /** What the participant needs to do its work (JSON). */
  payload: P;
}

export interface BeginTwoPhaseOptions extends BeginOptions {
  /** One branch per participant call; 1..100 branches. */
  branches: TwoPhaseBranch[];
}

const schema = z.strictObject({
  ...beginShape,
  branches: z
    .array(z.strictObject({ participant: participantName(XA_PARTICIPANT_NAME_MAX), payload: z.unknown() }))
    .min(1, 'needs at least one branch')
    .max(100),
});

/**
 * Begins a 2PC global transaction inside the caller's database transaction:
 * the global transaction and its branches are stored and a prepare command
 * is written to the outbox for each participant, so nothing happens unless
 * the caller's transaction commits. The coordinator collects the votes until
 * `timeoutMs`, decides, and sends commit or rollback.
 *
 * @returns the global transaction ID.
 * @throws ConcordatError CONFIG_INVALID naming the bad option.
 */
export async function beginTwoPhase(context: TransactionContext, input: BeginTwoPhaseOptions): Promise<string> {
  const { branches, ...options } = compileOptions(schema, input, 'twoPhase');
  return beginGlobalTx(context, TxMode.TWO_PHASE, options, branches);
}
