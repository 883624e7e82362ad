/**
 * Named fault points: places in Concordat's own code (between publishing and
 * marking an outbox row, between deciding and telling in a coordinator, ...)
 * where a test can stop the process, throw, or pause. Production code calls
 * `await faultPoint('relay.after-publish')`; with nothing armed that is one
 * Map-size check.
 *
 * Arm a point in process with {@link armFault}, or in a child process with
 * the environment variable `CONCORDAT_FAULTS`, a comma-separated list of
 * `<point>=<action>[@<hit>]`: `relay.after-publish=kill@3` SIGKILLs the
 * process the third time the point is reached; actions are `kill` and
 * `throw`. The public test kit (`concordat/testing`) builds on this.
 *
 * @module
 */

/** What an armed fault point does when hit: SIGKILL the process (`kill`), throw an {@link InjectedFault} (`throw`), or call the function given (which may wait, to pause the code at the point). */
export type FaultAction = 'kill' | 'throw' | ((point: string) => void | Promise<void>);

interface Armed {
  action: FaultAction;
  /** The hit (1-based) at which the action fires. */
  onHit: number;
  /** How many further hits fire after `onHit`. */
  times: number;
  hits: number;
}

const armed = new Map<string, Armed>();

/** Thrown by a fault point armed with `throw`. */
export class InjectedFault extends Error {
  constructor(readonly point: string) {
    super(`injected fault at ${point}`);
    this.name = 'InjectedFault';
  }
}

/**
 * Arms `point`: the `onHit`-th time it is reached (default the first), and
 * `times - 1` times after that, `action` runs.
 */
export function armFault(point: string, action: FaultAction, options: { onHit?: number; times?: number } = {}): void {
  armed.set(point, { action, onHit: options.onHit ?? 1, times: options.times ?? 1, hits: 0 });
}

/** Disarms one point, or all of them. */
export function disarmFaults(point?: string): void {
  if (point === undefined) armed.clear();
  else armed.delete(point);
}

/** How often each armed point was reached. */
export function faultHits(): Record<string, number> {
  return Object.fromEntries([...armed].map(([point, state]) => [point, state.hits]));
}

/** A point where a test may inject a fault. Resolves at once unless the point is armed. */
export async function faultPoint(point: string): Promise<void> {
  if (armed.size === 0) return;
  const state = armed.get(point);
  if (state === undefined) return;
  state.hits++;
  if (state.hits < state.onHit || state.hits >= state.onHit + state.times) return;
  const action = state.action;
  if (action === 'kill') {
    process.kill(process.pid, 'SIGKILL');
    // SIGKILL is not delivered synchronously everywhere; never continue past the point.
    return new Promise(() => {});
  }
  if (action === 'throw') throw new InjectedFault(point);
  await action(point);
}

/** Parses `CONCORDAT_FAULTS` (see the module comment). @throws Error naming the bad entry */
export function armFaultsFromEnv(spec: string | undefined = process.env.CONCORDAT_FAULTS): void {
  if (spec === undefined || spec.trim() === '') return;
  for (const entry of spec.split(',')) {
    const match = /^\s*([\w.-]+)=(kill|throw)(?:@(\d+))?\s*$/.exec(entry);
    if (match === null) {
      throw new Error(`CONCORDAT_FAULTS: '${entry}' is not <point>=kill|throw[@<hit>] (for example relay.after-publish=kill@2)`);
    }
    armFault(match[1]!, match[2] as 'kill' | 'throw', { onHit: match[3] === undefined ? 1 : Number(match[3]) });
  }
}

armFaultsFromEnv();
