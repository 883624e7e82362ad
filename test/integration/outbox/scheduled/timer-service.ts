import 'reflect-metadata';
import { writeSync } from 'node:fs';
import { ConcordatApp, OnMessage, Scheduled, Service, type MessageContext, type ScheduledContext } from '../../../../src/runtime/index.js';
import { KafkaTransport } from '../../../../src/transport/index.js';

/**
 * The app of the scheduled-delivery crash test in its own process:
 * `node --import tsx timer-service.ts` with DATABASE_URL and BOOTSTRAP (the
 * broker) in the environment, and CONCORDAT_FAULTS to be killed at a named
 * point. Its handler records each effect in `timer_effects` (no unique key:
 * the inbox alone must keep it to one per message). With CRON=1 it also
 * runs a schedule every second that records each tick in `cron_effects`.
 * Prints `ready` once started; SIGTERM stops it cleanly.
 */
@Service('timer-crash')
export class TimerEffects {
  @OnMessage('crash.timers')
  async fire(context: MessageContext<{ label: string }>): Promise<void> {
    await context.manager.query(`INSERT INTO timer_effects (message_id, label) VALUES ($1, $2)`, [context.message.id, context.data.label]);
  }
}

@Service('timer-crash')
export class CronEffects {
  @Scheduled('* * * * * *')
  async everySecond(context: ScheduledContext): Promise<void> {
    await context.manager.query(`INSERT INTO cron_effects (tick_at) VALUES ($1)`, [context.data.tickAt]);
  }
}

const transport = new KafkaTransport({
  brokers: [process.env.BOOTSTRAP!],
  clientId: 'timer-crash',
  consumer: { sessionTimeoutMs: 1500, heartbeatIntervalMs: 300, rebalanceTimeoutMs: 3000, maxWaitMs: 100, retryBackoffMs: 50, retryBackoffMaxMs: 500 },
});
const app = ConcordatApp.create({
  name: 'timer-crash',
  services: process.env.CRON === '1' ? [TimerEffects, CronEffects] : [TimerEffects],
  database: { url: process.env.DATABASE_URL!, poolSize: 4 },
  transport,
  partitions: 2,
  // One relay name across restarts: a restarted relay takes its shards back at once instead of waiting for its old leases.
  relay: { relayId: 'timer-crash-relay', pollIntervalMs: 100, leaseMs: 1500, leaseRenewIntervalMs: 500 },
});
await app.start();
writeSync(1, 'ready\n');
process.on('SIGTERM', () => {
  void app.stop().then(async () => {
    await transport.close();
    process.exit(0);
  });
});
