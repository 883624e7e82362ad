import { defineMessageHandler, legacyClassDecorator, legacyMethodDecorator, type RetryPolicyOptions } from '../../runtime/index.js';
import { ParticipantDecoratorKit } from '../participant/decorator-kit.js';
import { participantTopic } from './messages.js';
import { isParticipant, participantNameOf, type Participant } from '../participant/definition.js';
import { handleTccCommand, type TccMethods } from './participant.js';
import { inBranchSpan } from '../participant/tracing.js';
import { TxMode } from '../coordinator/states.js';

const ROLE_DECORATORS = { try: '@Try', confirm: '@Confirm', cancel: '@Cancel' } as const;
const kit = new ParticipantDecoratorKit<keyof TccMethods>('tcc', {
  label: 'TCC',
  classDecorator: '@TccParticipant',
  roles: ['try', 'confirm', 'cancel'],
  decoratorOf: (role) => ROLE_DECORATORS[role],
});

/** Options of `@TccParticipant(name, options)`. */
export interface TccParticipantOptions {
  /** Consumer group of the participant's command handler. @default the service's group */
  group?: string;
  /**
   * Retries of a failing Try, Confirm or Cancel. A Try that still fails after
   * the last attempt (or at once, for a non-retriable error) votes no. A
   * Confirm or Cancel that still fails is dead-lettered and sent again by the
   * coordinator later.
   */
  retry?: RetryPolicyOptions;
}

/**
 * Declares a TCC participant on a `@Service` class, by name or by
 * definition (`defineParticipant(name, schema)`: the methods then take
 * `TccContext<typeof definition>` and the payload is validated before each
 * runs; see `handleTccCommand`): the
 * coordinator sends its Try, Confirm and Cancel commands on
 * `concordat.tcc.<name>`, and the methods marked `@Try`, `@Confirm` and
 * `@Cancel` run behind a fence (see `fence.ts`) that makes Confirm and Cancel
 * idempotent, turns a Cancel before its Try into an empty rollback and
 * refuses a Try after its Cancel.
 *
 * A Try votes no by throwing (a non-retriable error votes at once; use
 * `nonRetriable(new Error('insufficient stock'))`); its writes are then
 * rolled back while the vote is recorded.
 */
export function TccParticipant(participant: string | Participant, options: TccParticipantOptions = {}): ClassDecorator {
  const name = participantNameOf(participant);
  const schema = isParticipant(participant) ? participant.schema : undefined;
  return legacyClassDecorator('@TccParticipant', (target) => {
    kit.declareParticipant(target, name);
    defineMessageHandler(target, {
      topic: participantTopic(name),
      methodName: `tcc(${name})`,
      options: { ...(options.group !== undefined && { group: options.group }), ...(options.retry !== undefined && { retry: options.retry }) },
      invoke: (instance, context) => inBranchSpan(TxMode.TCC, name, context, () => handleTccCommand(name, getTccMethods(target), instance, context, schema)),
    });
  });
}

/** Marks the method that tries (reserves) a branch. */
export function Try(): MethodDecorator {
  return legacyMethodDecorator('@Try', (prototype, key) => kit.recordMethod(prototype.constructor, 'try', String(key)));
}

/** Marks the method that confirms (uses) what Try reserved. Must be idempotent only with respect to the fence. */
export function Confirm(): MethodDecorator {
  return legacyMethodDecorator('@Confirm', (prototype, key) => kit.recordMethod(prototype.constructor, 'confirm', String(key)));
}

/** Marks the method that cancels (releases) what Try reserved. */
export function Cancel(): MethodDecorator {
  return legacyMethodDecorator('@Cancel', (prototype, key) => kit.recordMethod(prototype.constructor, 'cancel', String(key)));
}

/** The `@Try`, `@Confirm` and `@Cancel` methods recorded on `target`, by role. */
export function getTccMethods(target: Function): TccMethods {
  return kit.methods(target);
}
