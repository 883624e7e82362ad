import { defineDecoratorCheck, defineMessageHandler, getServiceMetadata, legacyClassDecorator, ownMetadata, legacyMethodDecorator } from '../../runtime/index.js';
import { commandTopic } from '../coordinator/messages.js';
import { TxMode } from '../coordinator/states.js';
import { handleSagaCommand, type SagaMethods } from './participant.js';
import { inBranchSpan } from '../participant/tracing.js';
import { isParticipant, participantNameOf, type Participant } from '../participant/definition.js';

const PARTICIPANT_METADATA = Symbol.for('concordat.saga.participant');
const METHODS_METADATA = Symbol.for('concordat.saga.methods');
const DUPLICATES_METADATA = Symbol.for('concordat.saga.duplicates');

export interface SagaParticipantOptions {
  /** Consumer group of the participant's command handler. @default the service's group */
  group?: string;
}

/**
 * Declares a saga participant on a `@Service` class, by name or by
 * definition (`defineParticipant(name, schema)`: the methods then take
 * `SagaContext<typeof definition>`, and a step whose payload the schema
 * refuses fails for good with VALIDATION_FAILED): the
 * coordinator sends it `execute` and `compensate` commands on
 * `concordat.saga.<name>`, which run the methods marked `@Step` and
 * `@Compensate` behind the fence (see `participant.ts`).
 *
 * A step fails by throwing: its writes and messages are rolled back, and the
 * coordinator retries it under the step's policy (given at `beginSaga`) if
 * the error is retriable, then compensates the steps done before it. Throw
 * `nonRetriable(new Error('card declined'))` to compensate at once.
 * A compensation that throws is retried by the coordinator until it
 * succeeds; one that throws a non-retriable error (or keeps failing past the
 * compensation policy) ends the saga FAILED for an operator.
 */
export function SagaParticipant(participant: string | Participant, options: SagaParticipantOptions = {}): ClassDecorator {
  const name = participantNameOf(participant);
  const schema = isParticipant(participant) ? participant.schema : undefined;
  return legacyClassDecorator('@SagaParticipant', (target) => {
    Reflect.defineMetadata(PARTICIPANT_METADATA, name, target);
    defineMessageHandler(target, {
      topic: commandTopic(TxMode.SAGA, name),
      methodName: `saga(${name})`,
      // The coordinator owns retries; a handler retry here would only cover the database failing.
      options: { ...(options.group !== undefined && { group: options.group }) },
      invoke: (instance, context) => inBranchSpan(TxMode.SAGA, name, context, () => handleSagaCommand(name, getSagaMethods(target), instance, context, schema)),
    });
    registerCheck(target);
  });
}

/** Marks the method that runs a saga step. */
export function Step(): MethodDecorator {
  return legacyMethodDecorator('@Step', (prototype, key) => recordMethod(prototype.constructor, 'step', String(key)));
}

/** Marks the method that undoes what the step did. */
export function Compensate(): MethodDecorator {
  return legacyMethodDecorator('@Compensate', (prototype, key) => recordMethod(prototype.constructor, 'compensate', String(key)));
}

function recordMethod(target: Function, role: keyof SagaMethods, methodName: string): void {
  const methods = ownMetadata<SagaMethods>(METHODS_METADATA, target) ?? {};
  const previous = methods[role];
  if (previous !== undefined && previous !== methodName) {
    const duplicates = ownMetadata<string[]>(DUPLICATES_METADATA, target) ?? [];
    Reflect.defineMetadata(DUPLICATES_METADATA, [...duplicates, `${previous} and ${methodName} are both @${role === 'step' ? 'Step' : 'Compensate'}`], target);
  }
  Reflect.defineMetadata(METHODS_METADATA, { ...methods, [role]: methodName }, target);
  registerCheck(target);
}

export function getSagaMethods(target: Function): SagaMethods {
  return ownMetadata<SagaMethods>(METHODS_METADATA, target) ?? {};
}

const checked = new WeakSet<Function>();

function registerCheck(target: Function): void {
  if (checked.has(target)) return;
  checked.add(target);
  defineDecoratorCheck(target, (cls) => {
    const name = ownMetadata<string>(PARTICIPANT_METADATA, cls);
    const methods = getSagaMethods(cls);
    const duplicates = ownMetadata<string[]>(DUPLICATES_METADATA, cls) ?? [];
    if (name === undefined) return `@Step/@Compensate need @SagaParticipant('<name>') on the class`;
    const missing = [methods.step === undefined ? '@Step' : undefined, methods.compensate === undefined ? '@Compensate' : undefined].filter(Boolean);
    if (missing.length > 0) return `saga participant '${name}' lacks ${missing.join(', ')}`;
    if (duplicates.length > 0) return `saga participant '${name}': ${duplicates.join('; ')}`;
    if (getServiceMetadata(cls) === undefined) return `saga participant '${name}' needs @Service('<name>') on the class`;
    return undefined;
  });
}
