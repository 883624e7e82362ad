import {
  defineDecoratorCheck,
  defineMessageHandler,
  getServiceMetadata,
  legacyClassDecorator,
  legacyMethodDecorator,
  ownMetadata,
  type RetryPolicyOptions,
} from '../../runtime/index.js';
import { participantTopic } from './messages.js';
import { isParticipant, participantNameOf, type Participant } from '../participant/definition.js';
import { handleTccCommand, type TccMethods } from './participant.js';
import { inBranchSpan } from '../participant/tracing.js';
import { TxMode } from '../coordinator/states.js';

const PARTICIPANT_METADATA = Symbol.for('concordat.tcc.participant');
const METHODS_METADATA = Symbol.for('concordat.tcc.methods');

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
    Reflect.defineMetadata(PARTICIPANT_METADATA, name, target);
    defineMessageHandler(target, {
      topic: participantTopic(name),
      methodName: `tcc(${name})`,
      options: { ...(options.group !== undefined && { group: options.group }), ...(options.retry !== undefined && { retry: options.retry }) },
      invoke: (instance, context) => inBranchSpan(TxMode.TCC, name, context, () => handleTccCommand(name, getTccMethods(target), instance, context, schema)),
    });
    registerCheck(target);
  });
}

/** Marks the method that tries (reserves) a branch. */
export function Try(): MethodDecorator {
  return legacyMethodDecorator('@Try', (prototype, key) => recordMethod(prototype.constructor, 'try', String(key)));
}

/** Marks the method that confirms (uses) what Try reserved. Must be idempotent only with respect to the fence. */
export function Confirm(): MethodDecorator {
  return legacyMethodDecorator('@Confirm', (prototype, key) => recordMethod(prototype.constructor, 'confirm', String(key)));
}

/** Marks the method that cancels (releases) what Try reserved. */
export function Cancel(): MethodDecorator {
  return legacyMethodDecorator('@Cancel', (prototype, key) => recordMethod(prototype.constructor, 'cancel', String(key)));
}

const DUPLICATES_METADATA = Symbol.for('concordat.tcc.duplicates');

function recordMethod(target: Function, role: keyof TccMethods, methodName: string): void {
  const methods = ownMetadata<Partial<TccMethods>>(METHODS_METADATA, target) ?? {};
  const previous = methods[role];
  if (previous !== undefined && previous !== methodName) {
    const duplicates = ownMetadata<string[]>(DUPLICATES_METADATA, target) ?? [];
    Reflect.defineMetadata(DUPLICATES_METADATA, [...duplicates, `${previous} and ${methodName} are both @${capitalize(role)}`], target);
  }
  Reflect.defineMetadata(METHODS_METADATA, { ...methods, [role]: methodName }, target);
  registerCheck(target);
}

function capitalize(role: string): string {
  return role[0]!.toUpperCase() + role.slice(1);
}

export function getTccMethods(target: Function): TccMethods {
  return ownMetadata<TccMethods>(METHODS_METADATA, target) ?? {};
}

const checked = new WeakSet<Function>();

/** One start-up check per class: a participant needs a name, a service, and all three methods, once each. */
function registerCheck(target: Function): void {
  if (checked.has(target)) return;
  checked.add(target);
  defineDecoratorCheck(target, (cls) => {
    const name = ownMetadata<string>(PARTICIPANT_METADATA, cls);
    const methods = getTccMethods(cls);
    const missing = (['try', 'confirm', 'cancel'] as const).filter((role) => methods[role] === undefined);
    const duplicates = ownMetadata<string[]>(DUPLICATES_METADATA, cls) ?? [];
    if (name === undefined) return `@Try/@Confirm/@Cancel need @TccParticipant('<name>') on the class`;
    if (missing.length > 0) return `TCC participant '${name}' lacks ${missing.map((role) => `@${capitalize(role)}`).join(', ')}`;
    if (duplicates.length > 0) return `TCC participant '${name}': ${duplicates.join('; ')}`;
    if (getServiceMetadata(cls) === undefined) return `TCC participant '${name}' needs @Service('<name>') on the class`;
    return undefined;
  });
}
