import { defineMessageHandler, legacyClassDecorator, legacyMethodDecorator } from '../../runtime/index.js';
import { ParticipantDecoratorKit } from '../participant/decorator-kit.js';
import { commandTopic } from '../coordinator/messages.js';
import { TxMode } from '../coordinator/states.js';
import { handleSagaCommand, type SagaMethods } from './participant.js';
import { inBranchSpan } from '../participant/tracing.js';
import { isParticipant, participantNameOf, type Participant } from '../participant/definition.js';

const kit = new ParticipantDecoratorKit<keyof SagaMethods>('saga', {
  label: 'saga',
  classDecorator: '@SagaParticipant',
  roles: ['step', 'compensate'],
  decoratorOf: (role) => (role === 'step' ? '@Step' : '@Compensate'),
});

/** Options of `@SagaParticipant(name, options)`. */
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
    kit.declareParticipant(target, name);
    defineMessageHandler(target, {
      topic: commandTopic(TxMode.SAGA, name),
      methodName: `saga(${name})`,
      // The coordinator owns retries; a handler retry here would only cover the database failing.
      options: { ...(options.group !== undefined && { group: options.group }) },
      invoke: (instance, context) => inBranchSpan(TxMode.SAGA, name, context, () => handleSagaCommand(name, getSagaMethods(target), instance, context, schema)),
    });
  });
}

/** Marks the method that runs a saga step. */
export function Step(): MethodDecorator {
  return legacyMethodDecorator('@Step', (prototype, key) => kit.recordMethod(prototype.constructor, 'step', String(key)));
}

/** Marks the method that undoes what the step did. */
export function Compensate(): MethodDecorator {
  return legacyMethodDecorator('@Compensate', (prototype, key) => kit.recordMethod(prototype.constructor, 'compensate', String(key)));
}

/** The `@Step` and `@Compensate` methods recorded on `target`, by role. */
export function getSagaMethods(target: Function): SagaMethods {
  return kit.methods(target);
}
