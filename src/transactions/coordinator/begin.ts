import { z } from 'zod';
import { ConcordatError, describeError, ErrorCode } from '../../errors.js';
import { TOPIC_NAME_CHARACTERS, topicNameProblem } from '../../log/index.js';
import { newMessageId } from '../../messaging/index.js';
import type { CompiledRetryPolicy, TransactionContext } from '../../runtime/index.js';
import { sendCommands } from './driver.js';
import { MODE_ACTIONS } from './messages.js';
import { BranchState, GlobalTxState, TxMode } from './states.js';
import { insertGlobalTx, type BranchRow, type NewBranch } from './store.js';
import { txMetrics } from './metrics.js';
import { recordSpanError } from '../../observability/index.js';
import { beginSpan } from './tracing.js';

/** Options every mode's begin function shares. */
export interface BeginOptions {
  /** Kind of global transaction, for operators (`place-order`). 1..200 characters. */
  name: string;
  /** Deadline for phase one (every vote, or every saga step), from now, in ms (database clock). Range 100..86400000. @default 30000 */
  timeoutMs?: number;
  /** Topic that receives a {@link GlobalTxOutcome} when the global transaction ends. @default none */
  outcomeTopic?: string;
  /** Partition key of the outcome message. @default the global transaction ID */
  outcomeKey?: string;
  /** Echoed in the outcome message (JSON). */
  payload?: unknown;
  /** Global transaction ID (a UUID). @default a new UUIDv7 */
  id?: string;
}

/** A participant's name ends its command topics' names (`commandTopic`): the characters of a topic name, 1..200 of them (a prefix still fits in 249). */
const PARTICIPANT_NAME = new RegExp(`^[${TOPIC_NAME_CHARACTERS}]{1,200}$`);

/** The zod shape of {@link BeginOptions} without branches; each mode adds its own. */
export const beginShape = {
  name: z.string().min(1).max(200),
  timeoutMs: z.number().int().min(100).max(86_400_000).default(30_000),
  outcomeTopic: z
    .string()
    .superRefine((topic, context) => {
      const problem = topicNameProblem(topic);
      if (problem !== undefined) context.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  outcomeKey: z.string().min(1).optional(),
  payload: z.unknown().optional(),
  id: z.string().uuid().optional(),
};

/** A participant name: 1..`max` characters of a-z, A-Z, 0-9, '.', '_', '-'. */
export function participantName(max = 200): z.ZodString {
  return z.string().max(max, `must be at most ${max} characters`).regex(PARTICIPANT_NAME, 'must be 1-200 characters of a-z, A-Z, 0-9, ., _, -');
}

/** One branch (or saga step) to begin: its participant, payload and, for a saga step, retry policy. */
export interface BranchSpec {
  participant: string;
  payload: unknown;
  retryPolicy?: CompiledRetryPolicy;
}

/**
 * Stores a global transaction of `mode` with its branches, in the caller's
 * transaction, and sends phase one through the caller's outbox: to every
 * branch (TCC, 2PC), or to the first (saga; 2PC with `sequential`; the
 * others wait). Nothing
 * happens unless the caller's transaction commits.
 *
 * @returns the global transaction ID.
 * @throws ConcordatError SERIALIZATION_FAILED naming the branch and its participant (or `payload`)
 *   when a payload cannot be serialized as JSON (a BigInt, a cycle); nothing is stored then.
 */
export async function beginGlobalTx(
  context: TransactionContext,
  mode: TxMode,
  options: Omit<BeginOptions, 'timeoutMs'> & { timeoutMs: number; compensationRetry?: CompiledRetryPolicy; sequential?: boolean },
  specs: readonly BranchSpec[],
): Promise<string> {
  const id = options.id ?? newMessageId();
  // A saga's steps run one after the other; a 2PC's prepares may (BeginTwoPhaseOptions.prepare).
  const sequential = mode === TxMode.SAGA || options.sequential === true;
  const branches: Array<NewBranch & BranchRow> = specs.map((spec, index) => ({
    branchId: index + 1,
    participant: spec.participant,
    payload: spec.payload ?? null,
    state: sequential && index > 0 ? BranchState.WAITING : BranchState.PENDING,
    retryPolicy: spec.retryPolicy ?? null,
    attempts: 0,
    error: null,
    result: null,
  }));
  const first = MODE_ACTIONS[mode].phaseOne;
  const commands = branches.filter((b) => b.state === BranchState.PENDING).map((b) => ({ branchId: b.branchId, action: first }));
  const traced = beginSpan(context, { id, mode, name: options.name, branches: branches.length });
  const tx = {
    id,
    mode,
    name: options.name,
    state: GlobalTxState.TRYING,
    timeoutMs: options.timeoutMs,
    payload: options.payload ?? null,
    outcomeTopic: options.outcomeTopic ?? null,
    outcomeKey: options.outcomeKey ?? null,
    compensationRetry: options.compensationRetry ?? null,
    branches,
    sent: `${first} → branch ${commands.map((c) => c.branchId).join(', ')}`,
    trace: traced.carrier,
  };
  try {
    try {
      await insertGlobalTx(context.manager, tx);
    } catch (error) {
      // The payloads are serialized while the statement is built, before it is sent; looked for only
      // on failure, so that a good begin serializes each payload once (here) and once (in its command).
      throw unserializablePayload(mode, options.name, options.payload, branches) ?? error;
    }
    traced.publish(() => sendCommands(context, { id, mode }, branches, commands));
  } catch (error) {
    recordSpanError(traced.span, error);
    throw error;
  } finally {
    traced.span.end();
  }
  txMetrics().begun(mode);
  return id;
}

const JSON_HINT = 'Pass JSON data: strings, numbers, booleans, null, arrays and plain objects (a BigInt as a string, a Date as an ISO string, no cycles).';

/** The SERIALIZATION_FAILED error for the first payload that `JSON.stringify` refuses, or undefined when every one serializes. */
function unserializablePayload(
  mode: TxMode,
  name: string,
  payload: unknown,
  branches: ReadonlyArray<{ branchId: number; participant: string; payload: unknown }>,
): ConcordatError | undefined {
  const refusal = (value: unknown): unknown => {
    try {
      JSON.stringify(value);
      return undefined;
    } catch (cause) {
      return cause ?? new Error('JSON.stringify threw');
    }
  };
  const fail = (what: string, cause: unknown, context: Record<string, unknown>): ConcordatError =>
    new ConcordatError(`${mode.toLowerCase()} '${name}': ${what} cannot be serialized as JSON (${describeError(cause)}). ${JSON_HINT}`, {
      code: ErrorCode.SERIALIZATION_FAILED,
      cause,
      context,
    });
  const own = refusal(payload);
  if (own !== undefined) return fail('payload', own, { name });
  for (const branch of branches) {
    const cause = refusal(branch.payload);
    if (cause !== undefined) {
      return fail(`branch ${branch.branchId} (participant '${branch.participant}'): its payload`, cause, {
        name,
        branchId: branch.branchId,
        participant: branch.participant,
      });
    }
  }
  return undefined;
}
