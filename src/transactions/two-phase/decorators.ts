import { assertPreparedTransactionsEnabled } from '../../persistence/index.js';
import { defineMessageHandler, defineStartHook, legacyClassDecorator, legacyMethodDecorator, type MessageContext } from '../../runtime/index.js';
import { compileXaParticipantOptions, type XaParticipantOptions } from '../../config/index.js';
import { BranchAction, commandTopic } from '../coordinator/messages.js';
import { TxMode } from '../coordinator/states.js';
import { XA_PARTICIPANT_NAME_MAX } from './gid.js';
import { handleXaCommand } from './participant.js';
import { isParticipant, participantNameOf, type Participant } from '../participant/definition.js';
import { recoverPrepared } from './recovery.js';
import { inBranchSpan } from '../participant/tracing.js';
import { ParticipantDecoratorKit } from '../participant/decorator-kit.js';

const kit = new ParticipantDecoratorKit<'prepare'>('xa', {
  label: '2PC',
  classDecorator: '@XaParticipant',
  roles: ['prepare'],
  decoratorOf: () => '@Prepare',
  checkName: (name) =>
    name.length > XA_PARTICIPANT_NAME_MAX
      ? `the name must be at most ${XA_PARTICIPANT_NAME_MAX} characters (it is part of the prepared transaction's gid)`
      : undefined,
});

export type { XaParticipantOptions } from '../../config/index.js';

/** Suffix of the consumer group that takes a 2PC participant's decisions (commit / rollback). */
export const XA_DECISIONS_GROUP_SUFFIX = '.xa-decisions';

/**
 * Declares a 2PC participant, by name (at most 100 characters) or by
 * definition (`defineParticipant(name, schema)`: `@Prepare` then takes
 * `XaContext<typeof definition>`, and a prepare whose payload the schema
 * refuses votes no with VALIDATION_FAILED), on a `@Service` class. The coordinator sends prepares on `concordat.xa.<name>`
 * and decisions on `concordat.xa-decisions.<name>`, the decisions consumed
 * by a consumer group of their own (`<group>.xa-decisions`): prepare runs the
 * `@Prepare` method in a transaction
 * of its own connection and ends it with `PREPARE TRANSACTION`; commit and
 * rollback run `COMMIT PREPARED` / `ROLLBACK PREPARED`, idempotently (see
 * `participant.ts`).
 *
 * When the app starts, each participant checks that PostgreSQL allows
 * prepared transactions (failing with a message naming
 * `max_prepared_transactions` otherwise), then asks the coordinator for the
 * decision on every prepared transaction of its own left from before.
 *
 * `@Prepare` votes no by throwing (a non-retriable error votes at once; use
 * `nonRetriable(new Error('insufficient stock'))`); its writes are rolled back.
 * It must do all its work through the context's `manager` (see
 * {@link Prepare}).
 */
export function XaParticipant(participant: string | Participant, options: XaParticipantOptions = {}): ClassDecorator {
  const name = participantNameOf(participant);
  const schema = isParticipant(participant) ? participant.schema : undefined;
  // Compiled at decoration, as before: a bad lockTimeoutMs fails where the class is declared.
  const { lockTimeoutMs } = compileXaParticipantOptions(options, name);
  return legacyClassDecorator('@XaParticipant', (target) => {
    kit.declareParticipant(target, name);
    const handler = {
      methodName: `xa(${name})`,
      options: {
        transactional: false,
        ...(options.group !== undefined && { group: options.group }),
        ...(options.retry !== undefined && { retry: options.retry }),
      },
      invoke: (instance: object, context: MessageContext) =>
        inBranchSpan(TxMode.TWO_PHASE, name, context, () => handleXaCommand(name, getPrepareMethod(target)!, instance, context, lockTimeoutMs, schema)),
    };
    // Prepares and decisions on topics of their own (see ModeActions.decisionTopicPrefix).
    defineMessageHandler(target, { ...handler, topic: commandTopic(TxMode.TWO_PHASE, name, BranchAction.PREPARE) });
    // Decisions in a consumer group of their own: with one group, a Kafka client's fetch of the
    // decisions waits until a prepare blocked on a row lock gives up, and the commit that would
    // release that row is in the decisions: a deadlock only lockTimeoutMs breaks.
    defineMessageHandler(target, {
      ...handler,
      methodName: `xa(${name}).decision`,
      topic: commandTopic(TxMode.TWO_PHASE, name, BranchAction.COMMIT),
      groupSuffix: XA_DECISIONS_GROUP_SUFFIX,
    });
    defineStartHook(target, async (_instance, app) => {
      await assertPreparedTransactionsEnabled(app.dataSource);
      await recoverPrepared(app, name);
    });
  });
}

/**
 * Marks the method that does a 2PC branch's work; its transaction is
 * prepared when it returns.
 *
 * All the branch's work must go through the provided context: `context.manager`
 * (its queries, `context.manager.getRepository(Entity)`, and nested
 * `context.manager.transaction(...)`, which becomes a savepoint of the branch
 * transaction). Only that work is prepared, and undone if the global
 * transaction rolls back. Work through any other connection — the
 * DataSource's own manager or repositories, an injected repository,
 * `dataSource.transaction(...)` — commits on its own at once, cannot be
 * detected here, and no rollback undoes it. Do not end the transaction
 * yourself (`COMMIT`, `ROLLBACK`), and do not catch a failed statement and
 * carry on (the transaction is then aborted): the branch then votes no, with
 * a reason naming the method, and an error is logged.
 */
export function Prepare(): MethodDecorator {
  return legacyMethodDecorator('@Prepare', (prototype, key) => kit.recordMethod(prototype.constructor, 'prepare', String(key)));
}

function getPrepareMethod(target: Function): string | undefined {
  return kit.methods(target).prepare;
}
