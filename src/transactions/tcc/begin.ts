import { z } from 'zod';
import { compileOptions } from '../../config/index.js';
import type { TransactionContext } from '../../runtime/index.js';
import { beginGlobalTx, beginShape, participantName, type BeginOptions } from '../coordinator/begin.js';
import type { BeginInput } from '../coordinator/begin-input.js';
import { TxMode } from '../coordinator/states.js';
import { namedBranches, type Participant } from '../participant/definition.js';

/** One branch of a TCC transaction: which participant and with what payload. */
export interface TccBranch<P = unknown> {
  /** Participant name, as in `@TccParticipant('<name>')`, or its definition (`defineParticipant`): the payload is then typed and validated. */
  participant: string | Participant;
  /** What the participant needs to Try, Confirm and Cancel (JSON). */
  payload: P;
}

/** Options of `beginTcc`: the common begin options and the branches. */
export interface BeginTccOptions extends BeginOptions {
  /** One branch per participant call; 1..100 branches. */
  branches: TccBranch[];
}

const schema = z.strictObject({
  ...beginShape,
  branches: z
    .array(z.strictObject({ participant: participantName(), payload: z.unknown() }))
    .min(1, 'needs at least one branch')
    .max(100),
});

/**
 * Begins a TCC global transaction inside the caller's database transaction:
 * the global transaction and its branches are stored and a Try command is
 * written to the outbox for each participant, so nothing happens unless the
 * caller's transaction commits. The coordinator (a `TransactionCoordinator`
 * in some app's services) drives it from there.
 *
 * Every payload must be JSON (checked at compile time: see {@link BeginInput}).
 * A branch whose participant is given by definition (`defineParticipant`)
 * has its payload typed from the schema's input and validated here.
 *
 * @returns the global transaction ID.
 * @throws ConcordatError CONFIG_INVALID naming the bad option.
 * @throws ValidationError VALIDATION_FAILED naming the branch whose payload its participant's schema refuses; nothing is stored.
 */
export async function beginTcc<I extends BeginTccOptions>(context: TransactionContext, input: BeginInput<I, BeginTccOptions>): Promise<string> {
  const { branches, ...options } = compileOptions(
    schema,
    { ...(input as object), branches: await namedBranches((input as { branches?: unknown } | undefined)?.branches, 'tcc.branches') },
    'tcc',
  );
  return beginGlobalTx(context, TxMode.TCC, options, branches);
}
