import { describeError } from '../../errors.js';
import { validateTopicName } from '../../log/index.js';
import { runTransaction, type MessageContext, type TransactionContext } from '../context.js';
import { CronSchedule } from '../cron.js';
import { defineDecoratorCheck, defineMessageHandler, defineStartHook } from '../metadata.js';
import type { RetryPolicyOptions } from '../../config/index.js';
import { legacyMethodDecorator } from './legacy.js';

/** What a tick of a schedule carries. */
export interface CronTick {
  /** The schedule's name (`ScheduledOptions.name`). */
  schedule: string;
  /** The tick's time, ISO 8601 UTC. */
  tickAt: string;
}

/** What a `@Scheduled` method receives: a handler's context whose data is the tick. */
export type ScheduledContext = MessageContext<CronTick>;

/** What to do with a missed tick (one that arrives more than `misfireThresholdMs` after its time): run it, or skip it. */
export const MissedTick = { RUN: 'run', SKIP: 'skip' } as const;
/** One of the {@link MissedTick} values. */
export type MissedTick = (typeof MissedTick)[keyof typeof MissedTick];

/** Options of `@Scheduled(expression, options)`. */
export interface ScheduledOptions {
  /** IANA time zone the expression is read in (daylight saving time included). @default 'UTC' */
  timezone?: string;
  /**
   * A tick is *missed* when it arrives more than `misfireThresholdMs` after
   * its time (everything was down, or far behind). `'run'`: run it (once:
   * the ticks that fell due meanwhile are not run one by one); `'skip'`: do
   * not run it. @default 'run'
   */
  missed?: MissedTick;
  /**
   * How late a tick may arrive and still count as on time, in ms (Quartz's
   * misfire threshold). Range ≥ 0. @default 60000
   */
  misfireThresholdMs?: number;
  /**
   * Name of the schedule: its ticks travel on topic `concordat.cron.<name>`
   * with message IDs `cron:<name>@<tick time>`. Keep it stable across
   * releases (ticks already scheduled carry it). @default '<ClassName>.<method>'
   */
  name?: string;
  /** Retry policy of the method, as `@OnMessage`'s. */
  retry?: RetryPolicyOptions;
}

/** Default of `ScheduledOptions.misfireThresholdMs`. */
const MISFIRE_THRESHOLD_MS_DEFAULT = 60_000;

/** Topic of a schedule's ticks: `concordat.cron.<name>`. */
export const CRON_TOPIC_PREFIX = 'concordat.cron.';

/**
 * Runs the method on a cron schedule, exactly once per tick across every
 * instance of the app: `@Scheduled('*\/5 * * * *', { timezone: 'Europe/Berlin' })`.
 * The expression (five fields, or six with seconds first) is parsed by
 * `cron-parser`; a bad one fails `app.start()` with a message naming it.
 *
 * **How.** Each tick is a scheduled message (`deliverAt` = the tick's time)
 * on topic `concordat.cron.<name>`, with the deterministic message ID
 * `cron:<name>@<tick time>`. Every instance, at start, publishes the next
 * tick after now (the same ID from every instance: the scheduled row's
 * primary key keeps one). The method is the tick's handler, in the
 * service's consumer group: one instance receives it, the inbox drops any
 * redelivery, so its effect happens once. Before running the method, the
 * handler publishes the following tick (in a transaction of its own, so the
 * schedule goes on even if the method fails for good and the tick is
 * dead-lettered). The scheduled row survives any restart; a tick due while
 * everything was down arrives at the next start, and `missed` says whether
 * it runs. The next tick is never in the past: a schedule behind by more
 * than a period goes on with the first tick after now.
 *
 * The method receives a {@link ScheduledContext}: its writes through
 * `context.manager` and what it publishes commit together with the inbox
 * row, as in any handler.
 *
 * @throws ConcordatError CONFIG_INVALID when compiled as a TC39 standard decorator.
 */
export function Scheduled(expression: string, options: ScheduledOptions = {}): MethodDecorator {
  return legacyMethodDecorator('@Scheduled', (prototype, propertyKey) => {
    const methodName = String(propertyKey);
    const target = prototype.constructor;
    const name = options.name ?? `${target.name}.${methodName}`;
    const topic = `${CRON_TOPIC_PREFIX}${name}`;
    let parsed: CronSchedule | undefined;
    const schedule = (): CronSchedule => (parsed ??= CronSchedule.parse(expression, options.timezone ?? 'UTC'));
    defineDecoratorCheck(target, () => {
      const threshold = options.misfireThresholdMs;
      if (threshold !== undefined && !(Number.isFinite(threshold) && threshold >= 0)) {
        return `@Scheduled on ${methodName}: misfireThresholdMs must be a finite number of ms ≥ 0, got ${String(threshold)}`;
      }
      if (options.missed !== undefined && !Object.values(MissedTick).includes(options.missed)) {
        return `@Scheduled on ${methodName}: missed must be 'run' or 'skip', got ${String(options.missed)}`;
      }
      try {
        schedule();
        validateTopicName(topic);
        return undefined;
      } catch (error) {
        return `@Scheduled on ${methodName}: ${describeError(error)}`;
      }
    });
    defineMessageHandler(target, {
      topic,
      methodName,
      options: options.retry === undefined ? {} : { retry: options.retry },
      invoke: async (instance: object, context: MessageContext) => {
        const tick = context.data as CronTick;
        const tickAt = new Date(tick.tickAt);
        const now = new Date();
        // Never a tick in the past: behind schedule, the ticks that fell due meanwhile are coalesced into this one.
        const following = schedule().nextAfter(tickAt);
        const next = following.getTime() > now.getTime() ? following : schedule().nextAfter(now);
        await runTransaction(context.manager.connection, context.source, async (tx) => void publishTick(tx, name, topic, next));
        const missed = now.getTime() - tickAt.getTime() > (options.misfireThresholdMs ?? MISFIRE_THRESHOLD_MS_DEFAULT);
        if (missed && options.missed === MissedTick.SKIP) return;
        const method = (instance as Record<string, unknown>)[methodName] as (context: ScheduledContext) => unknown;
        await method.call(instance, context as ScheduledContext);
      },
    });
    defineStartHook(target, async (_instance, app) => {
      const next = schedule().nextAfter(new Date());
      await app.transaction(async (tx) => void publishTick(tx, name, topic, next));
    });
  });
}

/** The message ID of a schedule's tick: the same in every instance, so the tick is stored and handled once. */
export function cronTickId(name: string, tickAt: Date): string {
  return `cron:${name}@${tickAt.toISOString()}`;
}

function publishTick(tx: TransactionContext, name: string, topic: string, tickAt: Date): string {
  const data: CronTick = { schedule: name, tickAt: tickAt.toISOString() };
  return tx.publish(topic, data, { id: cronTickId(name, tickAt), key: name, deliverAt: tickAt });
}
