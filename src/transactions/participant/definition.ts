import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Envelope } from '../../messaging/index.js';
import { assertStandardSchema, validateLater, type MessageContext } from '../../runtime/index.js';
import type { BranchCommand } from '../coordinator/messages.js';

const PARTICIPANT = Symbol.for('concordat.participant');

/**
 * A participant of global transactions and the schema of its branch
 * payload: the one object the caller (`beginTcc`, `beginSaga`,
 * `beginTwoPhase`: `{ participant: inventory, payload }`) and the
 * participant (`@TccParticipant(inventory)`, `@SagaParticipant`,
 * `@XaParticipant`; methods taking `TccContext<typeof inventory>`) both use,
 * as a typed topic is for messages. Made by {@link defineParticipant}.
 *
 * The payload travels as the caller gave it (the schema's input type, JSON);
 * the participant's methods receive the schema's output.
 */
export interface Participant<S extends StandardSchemaV1 = StandardSchemaV1> {
  /** The participant name (`concordat.tcc.<name>` and so on). */
  readonly name: string;
  /** The branch payload's schema. */
  readonly schema: S;
  readonly [PARTICIPANT]: true;
}

/**
 * The payload type a participant's methods receive: for a {@link Participant},
 * its schema's output type; any other type stands for itself (so
 * `TccContext<typeof inventory>` and `TccContext<Reservation>` both work).
 */
export type ParticipantPayload<P> = P extends Participant<infer S> ? StandardSchemaV1.InferOutput<S> : P;

/**
 * Defines a participant with a typed payload: `defineParticipant('inventory', z.object({ sku: z.string(), quantity: z.number() }))`.
 * The name rule is that of the decorators (1..200 characters of a-z, A-Z,
 * 0-9, '.', '_', '-'; at most 100 for a 2PC participant), checked where it
 * is used.
 * @throws ConcordatError CONFIG_INVALID when `schema` is not a Standard Schema v1.
 */
export function defineParticipant<S extends StandardSchemaV1>(name: string, schema: S): Participant<S> {
  assertStandardSchema(schema, `the schema of participant '${name}'`);
  return Object.freeze({ name, schema, [PARTICIPANT]: true as const });
}

/** Whether `value` was made by {@link defineParticipant}. */
export function isParticipant(value: unknown): value is Participant {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PARTICIPANT] === true;
}

/** The name of a participant given by name or by definition. */
export function participantNameOf(participant: string | Participant): string {
  return isParticipant(participant) ? participant.name : participant;
}

/**
 * The branches (or saga steps) of a begin call with each participant given
 * as its name, after validating, in order, the payload of every branch whose
 * participant was given by definition (the first invalid one throws). What
 * is stored and sent is the payload as given. Anything that is not an array
 * is returned as it is, for the options' own check to report.
 * @throws ValidationError VALIDATION_FAILED naming `<field>.<index>.payload` and the participant.
 */
export async function namedBranches(branches: unknown, field: string): Promise<unknown> {
  if (!Array.isArray(branches)) return branches;
  const named: unknown[] = [];
  for (const [index, branch] of branches.entries()) {
    const participant = (branch as { participant?: unknown } | null)?.participant;
    if (!isParticipant(participant)) {
      named.push(branch);
      continue;
    }
    const what = `${field}.${index}.payload (participant '${participant.name}')`;
    await validateLater(participant.schema, (branch as { payload?: unknown }).payload, what, { participant: participant.name, branch: index });
    named.push({ ...(branch as object), participant: participant.name });
  }
  return named;
}

/**
 * The command message with its payload validated by the participant's
 * schema and replaced by the schema's output, for the participant's
 * methods; the message as it is without a schema.
 * @throws ValidationError VALIDATION_FAILED (not retriable): a Try or a
 *   prepare then votes no, a saga step fails for good; a Confirm, Cancel,
 *   commit, rollback or compensation is dead-lettered at once.
 */
export async function validatedCommand(schema: StandardSchemaV1 | undefined, participant: string, message: MessageContext): Promise<Envelope> {
  if (schema === undefined) return message.message;
  const command = message.data as BranchCommand;
  const what = `the payload of branch ${command.branchId} of global transaction ${command.globalTxId} (participant '${participant}')`;
  const payload = await validateLater(schema, command.payload, what, { participant, globalTxId: command.globalTxId, branchId: command.branchId });
  return { ...message.message, data: { ...command, payload } };
}
