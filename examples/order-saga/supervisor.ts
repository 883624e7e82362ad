import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** How to run one supervised process. */
export interface ProcessSpec {
  /** Unique name: `broker`, `orders`, ... */
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** A line on stdout matching this means the process is ready. */
  ready: RegExp;
  /** Where the process's stderr (its JSON logs) and its other stdout lines go; appended across restarts. */
  logFile: string;
}

export interface SupervisorOptions {
  /** Longest wait for the ready line, in ms. @default 60000 */
  readyTimeoutMs?: number;
  /** Delay before restarting a process that exited on its own, in ms. @default 500 */
  restartDelayMs?: number;
  /** Restarts allowed per process before the supervisor gives up on it. @default 100 */
  restartsMax?: number;
  /** Time a process gets to stop after SIGTERM before SIGKILL, in ms. @default 15000 */
  stopGraceMs?: number;
  /** Called on starts, ready lines (with the time since the start), exits and restarts (one line each), for the demo's output. */
  onEvent?: (line: string) => void;
}

interface Supervised {
  spec: ProcessSpec;
  child: ChildProcess | null;
  restarts: number;
  /** Set while the process may not be restarted (stopping, or given up). */
  stopped: boolean;
  /** The ready line's match of the latest start. */
  readyMatch: RegExpMatchArray | null;
  log: WriteStream;
}

/**
 * Runs the demo's processes (the broker, the services) as OS processes and
 * restarts any that exits without being asked to — a crash, or a SIGKILL
 * from a chaos run (`kill(name)`). A restarted process gets the same command
 * and environment; services resume from the database and their consumer
 * groups' committed offsets, the broker from its log directory.
 */
export class Supervisor {
  private readonly processes = new Map<string, Supervised>();
  private readonly readyTimeoutMs: number;
  private readonly restartDelayMs: number;
  private readonly restartsMax: number;
  private readonly stopGraceMs: number;
  /** If this process exits with children still running (a crash, a closed stdout), they are killed with it. */
  private readonly killOnExit = (): void => {
    for (const entry of this.processes.values()) {
      entry.stopped = true;
      entry.child?.kill('SIGKILL');
    }
  };

  constructor(private readonly options: SupervisorOptions = {}) {
    this.readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
    this.restartDelayMs = options.restartDelayMs ?? 500;
    this.restartsMax = options.restartsMax ?? 100;
    this.stopGraceMs = options.stopGraceMs ?? 15_000;
    process.on('exit', this.killOnExit);
  }

  /**
   * Starts a process and waits until it prints its ready line.
   * @returns the ready line's match (a broker prints its port in it)
   * @throws when it exits or stays silent for `readyTimeoutMs` first
   */
  async start(spec: ProcessSpec): Promise<RegExpMatchArray> {
    if (this.processes.has(spec.name)) throw new Error(`process ${spec.name} is already supervised`);
    const entry: Supervised = { spec, child: null, restarts: 0, stopped: false, readyMatch: null, log: createWriteStream(spec.logFile, { flags: 'a' }) };
    this.processes.set(spec.name, entry);
    try {
      return await this.launch(entry);
    } catch (error) {
      entry.stopped = true;
      throw error;
    }
  }

  /** Changes what a process runs from its next restart on (the broker keeps the port it got first). */
  respec(name: string, change: Partial<Pick<ProcessSpec, 'args' | 'env'>>): void {
    const entry = this.require(name);
    entry.spec = { ...entry.spec, ...change };
  }

  /** Sends `signal` (SIGKILL by default) to a running process; the supervisor restarts it. @returns whether one was running */
  kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
    const child = this.require(name).child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return false;
    return child.kill(signal);
  }

  /** How often each process was restarted. */
  restarts(): Record<string, number> {
    return Object.fromEntries([...this.processes].map(([name, entry]) => [name, entry.restarts]));
  }

  /** The PID of a running process, or null. */
  pid(name: string): number | null {
    return this.require(name).child?.pid ?? null;
  }

  /** Stops the named processes (all, in reverse start order, by default): SIGTERM, then SIGKILL after the grace time. */
  async stop(names: string[] = [...this.processes.keys()].reverse()): Promise<void> {
    for (const name of names) {
      const entry = this.require(name);
      entry.stopped = true;
      await this.terminate(entry);
      entry.log.end();
    }
    if ([...this.processes.values()].every((entry) => entry.stopped && entry.child === null)) process.off('exit', this.killOnExit);
  }

  private require(name: string): Supervised {
    const entry = this.processes.get(name);
    if (entry === undefined) throw new Error(`no supervised process named ${name}`);
    return entry;
  }

  private launch(entry: Supervised): Promise<RegExpMatchArray> {
    const { spec } = entry;
    // The IPC channel closes when this process dies, however it dies: a child may watch it ('disconnect').
    const spawnedAt = Date.now();
    const child = spawn(spec.command, spec.args, { env: spec.env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    entry.child = child;
    child.stderr!.pipe(entry.log, { end: false });
    this.options.onEvent?.(`${spec.name}: started (pid ${child.pid})`);
    return new Promise<RegExpMatchArray>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        reject(new Error(`${spec.name} did not print its ready line within ${this.readyTimeoutMs} ms (see ${spec.logFile})`));
        child.kill('SIGKILL');
      }, this.readyTimeoutMs);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        entry.log.write(`[stdout] ${line}\n`);
        const match = ready ? null : spec.ready.exec(line);
        if (match === null) return;
        ready = true;
        clearTimeout(timer);
        entry.readyMatch = match;
        this.options.onEvent?.(`${spec.name}: ready (pid ${child.pid}, ${((Date.now() - spawnedAt) / 1000).toFixed(1)} s after its start)`);
        resolve(match);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (!ready) reject(new Error(`${spec.name} exited (${signal ?? `code ${code}`}) before it was ready (see ${spec.logFile})`));
        this.onExit(entry, child, code, signal);
      });
    });
  }

  private onExit(entry: Supervised, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (entry.child === child) entry.child = null;
    if (entry.stopped) return;
    const name = entry.spec.name;
    if (entry.restarts >= this.restartsMax) {
      entry.stopped = true;
      this.options.onEvent?.(`${name}: exited (${signal ?? `code ${code}`}); ${this.restartsMax} restarts used, giving up`);
      return;
    }
    entry.restarts += 1;
    this.options.onEvent?.(`${name}: exited (${signal ?? `code ${code}`}); restart ${entry.restarts} in ${this.restartDelayMs} ms`);
    setTimeout(() => {
      if (entry.stopped) return;
      // A restart that fails before it is ready exits again and comes back here.
      this.launch(entry).catch((error: unknown) => this.options.onEvent?.(`${name}: ${error instanceof Error ? error.message : String(error)}`));
    }, this.restartDelayMs);
  }

  private terminate(entry: Supervised): Promise<void> {
    const child = entry.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), this.stopGraceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
