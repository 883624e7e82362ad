import { z } from 'zod';
import { compileOptions } from '../../config/index.js';
import { compileRetryPolicy, type RetryPolicyOptions, type TransactionContext } from '../../runtime/index.js';
import { beginGlobalTx, beginShape, participantName, type BeginOptions } from '../coordinator/begin.js';
import type { BeginInput } from '../coordinator/begin-input.js';
import { TxMode } from '../coordinator/states.js';
import { namedBranches, type Participant } from '../participant/definition.js';

/** One step of a saga: which participant runs it and with what payload. */
export interface SagaStep<P = unknown> {
  /** Participant name, as in `@SagaParticipant('<name>')`, or its definition (`defineParticipant`): the payload is then typed and validated. */
  participant: string | Participant;
  /** What the participant needs to run and to compensate the step (JSON). */
  payload: P;
  /**
   * How a step that fails with a retriable error is tried again before the
   * saga compensates; attempts count the first. @default { maxAttempts: 3, initialDelayMs: 200, maxDelayMs: 5000 } (exponential, jittered)
   */
  retry?: RetryPolicyOptions;
}

/** Options of `beginSaga`: the common begin options and the saga's steps. */
export interface BeginSagaOptions extends BeginOptions {
  /** The steps, run in this order, one at a time; 1..100 steps. */
  steps: SagaStep[];
  /**
   * How a compensation that fails retriably is tried again; when it runs out
   * (or on a non-retriable failure) the saga ends FAILED for an operator.
   * Attempts count failures. @default { maxAttempts: 20, initialDelayMs: 500, maxDelayMs: 60000 } (exponential, jittered)
   */
  compensationRetry?: RetryPolicyOptions;
}

const DEFAULT_STEP_RETRY: RetryPolicyOptions = { maxAttempts: 3, initialDelayMs: 200, maxDelayMs: 5000 };
const DEFAULT_COMPENSATION_RETRY: RetryPolicyOptions = { maxAttempts: 20, initialDelayMs: 500, maxDelayMs: 60_000 };

const schema = z.strictObject({
  ...beginShape,
  steps: z
    .array(z.strictObject({ participant: participantName(), payload: z.unknown(), retry: z.record(z.string(), z.unknown()).optional() }))
    .min(1, 'needs at least one step')
    .max(100),
  compensationRetry: z.record(z.string(), z.unknown()).optional(),
});

/**
 * Begins an orchestrated saga inside the caller's database transaction: the
 * global transaction and its steps are stored and the first step's command
 * is written to the outbox, so nothing happens unless the caller's
 * transaction commits. The coordinator then runs the steps in order; when
 * one fails for good (or the deadline passes), it compensates the steps done
 * so far, last first.
 *
 * Every payload must be JSON (checked at compile time: see {@link BeginInput}).
 * A step whose participant is given by definition (`defineParticipant`)
 * has its payload typed from the schema's input and validated here.
 *
 * @returns the global transaction ID.
 * @throws ConcordatError CONFIG_INVALID naming the bad option (`saga.steps.1.retry.maxAttempts: ...`).
 * @throws ValidationError VALIDATION_FAILED naming the step whose payload its participant's schema refuses; nothing is stored.
 */
export async function beginSaga<I extends BeginSagaOptions>(context: TransactionContext, input: BeginInput<I, BeginSagaOptions>): Promise<string> {
  const { steps, compensationRetry, ...options } = compileOptions(
    schema,
    { ...(input as object), steps: await namedBranches((input as { steps?: unknown } | undefined)?.steps, 'saga.steps') },
    'saga',
  );
  const compiledSteps = steps.map((step, index) => ({
    participant: step.participant,
    payload: step.payload,
    retryPolicy: compileRetryPolicy({ ...DEFAULT_STEP_RETRY, ...(step.retry as RetryPolicyOptions) }, `saga.steps.${index}.retry`),
  }));
  const compensation = compileRetryPolicy({ ...DEFAULT_COMPENSATION_RETRY, ...(compensationRetry as RetryPolicyOptions) }, 'saga.compensationRetry');
  return beginGlobalTx(context, TxMode.SAGA, { ...options, compensationRetry: compensation }, compiledSteps);
}
