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
  const unexpectedExits: string[] = [];
  let monkey: KillLoop | undefined;
  const stopKilling = (): Kill[] => monkey?.stop() ?? [];

  try {
    const result = await runDistributedDemo({
      ...demo,
      onSupervisor: (supervisor, running) => {
        monkey = startKilling(supervisor, {
          random: mulberry32(chaos.seed),
          waitMinMs: chaos.intervalMs * 0.5,
          waitMaxMs: chaos.intervalMs * 1.5,
          killsMax: chaos.kills,
          ...(chaos.onKill !== undefined && { onKill: chaos.onKill }),
        });
        demo.onSupervisor?.(supervisor, running);
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
    const kills = stopKilling();
    const checks: Check[] = [
      ...result.checks,
      {
        name: `${chaos.kills} service processes SIGKILLed while orders ran`,
        ok: kills.length >= chaos.kills,
        detail:
          kills.length >= chaos.kills
            ? `${kills.length} kills`
            : `only ${kills.length} kills before every order ended: feed more slowly (--rate) or kill more often`,
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
}

/** How {@link startKilling} picks its victims and its moments. */
export interface KillLoopOptions {
  /** Uniform in [0, 1): draws the victims and the waits (a seeded one replays a run). */
  random: () => number;
  /** Each wait before the next kill is uniform in [waitMinMs, waitMaxMs]. */
  waitMinMs: number;
  waitMaxMs: number;
  /** Stop after this many kills. @default no limit */
  killsMax?: number;
  /** Called once per kill, as it happens. */
  onKill?: (kill: Kill) => void;
}

/** A running kill loop; `stop()` ends it and returns the kills made, in order. */
export interface KillLoop {
  stop(): Kill[];
}

/**
 * SIGKILLs a randomly chosen running service unit (orders, inventory or
 * payment; not the broker) through `supervisor` after each wait, until
 * `killsMax` kills or `stop()`. The supervisor restarts each. A unit between
 * its exit and its restart has no process and is not chosen; a kill may hit
 * a unit still starting (its recovery at start-up is part of what is tested).
 */
export function startKilling(supervisor: Supervisor, options: KillLoopOptions): KillLoop {
  const kills: Kill[] = [];
  const startedAt = Date.now();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const scheduleNext = (): void => {
    if (stopped || kills.length >= (options.killsMax ?? Infinity)) return;
    timer = setTimeout(killOne, options.waitMinMs + (options.waitMaxMs - options.waitMinMs) * options.random());
  };
  const killOne = (): void => {
    if (stopped) return;
    const running = UNIT_NAMES.filter((unit) => supervisor.pid(unit) !== null);
    const unit = running[Math.floor(options.random() * running.length)];
    const pid = unit === undefined ? null : supervisor.pid(unit);
    if (unit !== undefined && pid !== null && supervisor.kill(unit, 'SIGKILL')) {
      const at = Date.now();
      const kill: Kill = { n: kills.length + 1, unit, pid, at, sinceStartMs: at - startedAt };
      kills.push(kill);
      options.onKill?.(kill);
    }
    scheduleNext();
  };
  scheduleNext();
  return {
    stop: () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      return [...kills];
    },
  };
}

/** Kills per unit, every unit listed. */
export function killsByUnit(kills: Kill[]): Record<UnitName, number> {
  const counts = Object.fromEntries(UNIT_NAMES.map((unit) => [unit, 0])) as Record<UnitName, number>;
  for (const kill of kills) counts[kill.unit] += 1;
  return counts;
}

/** A small seeded PRNG (mulberry32): uniform in [0, 1), the same sequence for the same seed. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
