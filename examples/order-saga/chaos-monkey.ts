import type { Check } from './checks.js';
import type { Progress } from './demo.js';
import { UNIT_NAMES, type UnitName } from './deployment.js';
import { runDistributedDemo, type DistributedDemoOptions, type DistributedDemoResult } from './distributed.js';
import type { Supervisor } from './supervisor.js';

/** One SIGKILL the monkey sent. */
export interface Kill {
  /** Sequence number, from 1. */
  n: number;
  unit: UnitName;
  pid: number;
  /** Wall-clock time of the kill (ms since the epoch). */
  at: number;
  /** Time since the orders started (ms). */
  sinceStartMs: number;
}

export interface ChaosOptions {
  /** Kills to make while the orders run; fewer is a failure. Range 1..1000. */
  kills: number;
  /** Mean time between kills, in ms; each wait is drawn uniformly from [0.5, 1.5] × this. */
  intervalMs: number;
  /** Seed of the choice of victims and waits, so a failing run can be replayed. */
  seed: number;
  /** Called once per kill, as it happens. */
  onKill?: (kill: Kill) => void;
}

export interface ChaosResult extends DistributedDemoResult {
  kills: Kill[];
  /** Lines of units that exited without being killed (a crash, a failed start). */
  unexpectedExits: string[];
}

/**
 * The distributed demo in `demo.mode` while a randomly chosen service unit
 * (orders with the coordinator, inventory or payment; not the broker) is
 * SIGKILLed every `intervalMs` or so until `kills` kills were made. The
 * supervisor restarts each killed unit; the units resume from the database
 * and their consumer groups' committed offsets.
 *
 * The result's checks are the demo's, plus two: the monkey made all its kills
 * while orders were still running (a feed too short to cover them is a failed
 * run, not a quiet pass), and no unit exited without being killed. A kill
 * may hit a unit while it is still starting: recovery at start-up (2PC's
 * in-doubt prepared transactions, the relay's leases) is part of what is
 * tested.
 */
export async function runChaos(demo: DistributedDemoOptions, chaos: ChaosOptions): Promise<ChaosResult> {
  const kills: Kill[] = [];
  const unexpectedExits: string[] = [];
  const random = mulberry32(chaos.seed);
  let supervisor: Supervisor | undefined;
  let startedAt = 0;
  let finished = false;
  let timer: NodeJS.Timeout | undefined;

  const scheduleNext = (): void => {
    if (finished || kills.length >= chaos.kills) return;
    timer = setTimeout(killOne, chaos.intervalMs * (0.5 + random()));
  };
  const killOne = (): void => {
    if (finished || supervisor === undefined) return;
    // A unit between its exit and its restart has no process: choose among those that do.
    const running = UNIT_NAMES.filter((unit) => supervisor!.pid(unit) !== null);
    const unit = running[Math.floor(random() * running.length)];
    const pid = unit === undefined ? null : supervisor.pid(unit);
    if (unit !== undefined && pid !== null && supervisor.kill(unit, 'SIGKILL')) {
      const at = Date.now();
      const kill: Kill = { n: kills.length + 1, unit, pid, at, sinceStartMs: at - startedAt };
      kills.push(kill);
      chaos.onKill?.(kill);
    }
    scheduleNext();
  };

  try {
    const result = await runDistributedDemo({
      ...demo,
      onSupervisor: (s) => {
        supervisor = s;
        startedAt = Date.now();
        demo.onSupervisor?.(s);
        scheduleNext();
      },
      onProcessEvent: (line) => {
        // The supervisor reports every exit; ours are the SIGKILLs of service units.
        if (/ exited \(/.test(line) && !/ exited \(SIGKILL\)/.test(line)) unexpectedExits.push(line);
        demo.onProcessEvent?.(line);
      },
      onProgress: (progress: Progress) => {
        if (progress.confirmed + progress.cancelled >= progress.total) stopKilling();
        demo.onProgress?.(progress);
      },
    });
    stopKilling();
    const checks: Check[] = [
      ...result.checks,
      {
        name: `${chaos.kills} service processes SIGKILLed while orders ran`,
        ok: kills.length >= chaos.kills,
        detail: kills.length >= chaos.kills ? `${kills.length} kills` : `only ${kills.length} kills before every order ended: feed more slowly (--rate) or kill more often`,
      },
      {
        name: 'no process exited without being killed',
        ok: unexpectedExits.length === 0,
        detail: unexpectedExits.length === 0 ? 'only SIGKILLs' : unexpectedExits.slice(0, 5).join('; '),
      },
    ];
    return { ...result, checks, ok: checks.every((check) => check.ok), kills, unexpectedExits };
  } finally {
    stopKilling();
  }

  function stopKilling(): void {
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Kills per unit, every unit listed. */
export function killsByUnit(kills: Kill[]): Record<UnitName, number> {
  const counts = Object.fromEntries(UNIT_NAMES.map((unit) => [unit, 0])) as Record<UnitName, number>;
  for (const kill of kills) counts[kill.unit] += 1;
  return counts;
}

/** A small seeded PRNG (mulberry32): uniform in [0, 1), the same sequence for the same seed. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
