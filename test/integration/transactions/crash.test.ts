import { afterAll, describe, expect, it } from 'vitest';
import { checkInvariants } from './crash/checks.js';
import { CrashCluster, type Role } from './crash/cluster.js';
import type { CrashMode } from './crash/participants.js';

/**
 * Crash tests: the coordinator and each participant run in processes of
 * their own, against `concordat broker` (real TCP) and Postgres; each round
 * restarts one of them with a named fault point armed, begins a batch of
 * global transactions, waits until the process dies by SIGKILL at that point,
 * and goes on. At the end every process runs again, every global transaction
 * must end, and the invariants of `crash/checks.ts` must hold.
 *
 * `npm run test:crash` runs the full plan (every point on every process,
 * several hits, larger batches); the default plan covers every phase
 * boundary of each mode once.
 */
const FULL = process.env.CONCORDAT_CRASH === 'full';
const BATCH = FULL ? 8 : 4;

interface Kill {
  role: Role;
  point: string;
  hit: number;
  /** Let the deadline pass with beta down: the coordinator decides on time, not on votes. */
  deadline?: boolean;
}

const COORDINATOR_POINTS = ['coordinator.after-reply', 'coordinator.before-decide', 'coordinator.after-decide', 'coordinator.after-end'];

const PARTICIPANT_POINTS: Record<CrashMode, string[]> = {
  // Between Try and its reply nothing separates them (one transaction); after the commit, the offset is not yet committed.
  tcc: ['tcc.after-try', 'dispatcher.after-commit', 'tcc.after-confirm', 'tcc.after-cancel', 'relay.after-publish'],
  '2pc': ['xa.before-prepare', 'xa.after-prepare', 'xa.after-commit-prepared', 'xa.after-commit', 'xa.after-rollback'],
  saga: ['saga.after-step', 'dispatcher.after-commit', 'saga.after-compensate', 'relay.after-publish'],
};

function plan(mode: CrashMode): Kill[] {
  const kills: Kill[] = [];
  // The coordinator's reply handler commits its own transaction (a group commit), so its after-commit points are its own.
  const coordinator = FULL ? [...COORDINATOR_POINTS, 'relay.after-publish'] : COORDINATOR_POINTS;
  coordinator.forEach((point, i) => kills.push({ role: 'coordinator', point, hit: 1 + (i % 2) }));
  kills.push({ role: 'coordinator', point: 'coordinator.after-timeout', hit: 1, deadline: true });
  PARTICIPANT_POINTS[mode].forEach((point, i) => {
    if (FULL) {
      kills.push({ role: 'alpha', point, hit: 1 }, { role: 'beta', point, hit: 2 });
    } else {
      // Each point once, on alternating participants; compensation and rollback points on the one that gets them.
      const role = /cancel|rollback|compensate/.test(point) ? (mode === 'saga' ? 'alpha' : 'beta') : i % 2 === 0 ? 'alpha' : 'beta';
      kills.push({ role, point, hit: 1 });
    }
  });
  return kills;
}

/** Refusals across a batch: some confirm, some are refused by the first or the last branch. */
function refusal(mode: CrashMode): (i: number) => number | undefined {
  const cycle = mode === 'saga' ? [undefined, 3, 2, undefined] : [undefined, 2, undefined, 1];
  return (i) => cycle[i % cycle.length];
}

/**
 * alpha in the coordinator's process, beta in its own: alpha's replies are
 * applied by the coordinator inside alpha's transactions (co-located), beta's
 * travel through the log. The coordinator's points and alpha's are armed on
 * that one process, beta's on its own.
 */
function colocatedPlan(mode: CrashMode): Kill[] {
  const kills: Kill[] = COORDINATOR_POINTS.map((point, i) => ({ role: 'coordinator' as const, point, hit: 1 + (i % 2) }));
  for (const point of PARTICIPANT_POINTS[mode]) {
    // Cancels reach beta (alpha refuses in the cycle); compensations reach alpha (beta refuses).
    const role = /cancel/.test(point) ? 'beta' : 'coordinator';
    kills.push({ role, point, hit: 1 });
  }
  kills.push({ role: 'beta', point: 'dispatcher.after-commit', hit: 1 });
  return kills;
}

describe.each<CrashMode>(['tcc', 'saga'])("%s, alpha in the coordinator's process, under crashes at every phase boundary", (mode) => {
  let cluster: CrashCluster | undefined;
  afterAll(async () => {
    await cluster?.close();
  });

  it('every global transaction ends, the invariants hold', { timeout: 240_000 }, async () => {
    cluster = await CrashCluster.start(mode, { colocated: true });
    const c = cluster;
    await Promise.all((['coordinator', 'beta'] as const).map((role) => c.startService(role)));
    const killed: string[] = [];
    for (const role of ['coordinator', 'beta'] as const) {
      await c.stopService(role);
      for (const kill of colocatedPlan(mode).filter((k) => k.role === role)) {
        await c.startService(role, `${kill.point}=kill@${kill.hit}`);
        await c.begin(BATCH, refusal(mode), 60_000);
        await c.expectKilled(role, kill.point);
        killed.push(`${role}@${kill.point}`);
      }
      await c.startService(role);
    }
    await c.allEnded();
    const { confirmed, cancelled } = await checkInvariants(c);
    expect(killed.length).toBe(colocatedPlan(mode).length);
    expect(confirmed).toBeGreaterThan(0);
    expect(cancelled).toBeGreaterThan(0);
  });
});

describe.each<CrashMode>(['tcc', '2pc', 'saga'])('%s under crashes at every phase boundary', (mode) => {
  let cluster: CrashCluster | undefined;
  afterAll(async () => {
    await cluster?.close();
  });

  it('every global transaction ends, the invariants hold, and no prepared transaction remains', { timeout: FULL ? 900_000 : 240_000 }, async () => {
    cluster = await CrashCluster.start(mode);
    const c = cluster;
    await Promise.all((['coordinator', 'alpha', 'beta'] as const).map((role) => c.startService(role)));
    const killed: string[] = [];
    // Kills grouped by process: each process is restarted with the next point armed, and once more with none.
    for (const role of ['coordinator', 'alpha', 'beta'] as const) {
      await c.stopService(role);
      for (const kill of plan(mode).filter((k) => k.role === role)) {
        if (kill.deadline) await c.stopService('beta');
        await c.startService(role, `${kill.point}=kill@${kill.hit}`);
        await c.begin(kill.deadline ? 3 : BATCH, refusal(mode), kill.deadline ? 800 : 60_000, kill.deadline);
        await c.expectKilled(role, kill.point);
        killed.push(`${role}@${kill.point}`);
        if (kill.deadline) await c.startService('beta');
      }
      await c.startService(role);
    }
    await c.allEnded();
    const { confirmed, cancelled } = await checkInvariants(c);
    expect(killed.length).toBe(plan(mode).length);
    // Both outcomes were exercised under the crashes.
    expect(confirmed).toBeGreaterThan(0);
    expect(cancelled).toBeGreaterThan(0);
  });
});
