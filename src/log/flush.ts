/** Anything with fdatasync: a segment (segment.ts), whose datasync goes through the file pool. */
export interface Syncable {
  /** fdatasync(2) of the whole file: every write made before the call is on disk when it resolves. */
  datasync(): Promise<void>;
}

interface Waiter {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface FileState {
  running: boolean;
  next: Waiter | null;
}

/** Counters, for tests and benchmarks that prove the sharing. */
export interface FlushStats {
  /** fdatasync calls made. */
  syncs: number;
  /** Sync requests served. */
  requests: number;
}

/**
 * Group commit: every durable append asks for an fdatasync of its segment
 * file, and appends that ask while a sync of that file is running or
 * scheduled share the next one. Keyed by segment, not by descriptor: the
 * file pool may close and reopen a segment's descriptor between a write and
 * its sync, and fdatasync on any descriptor of the file covers every write.
 *
 * Per file there is at most one sync in flight and at most one waiting. A
 * request made after its bytes were written resolves only after a sync that
 * *started* after the request, so it covers those bytes; every request that
 * arrives while a sync runs joins the single next sync. Under load a file is
 * therefore synced back to back, each sync covering everything written
 * during the previous one; throughput is bounded by the disk's sync rate,
 * not by the number of appenders.
 *
 * Across files (many partitions): fdatasync is per file and Node offers no
 * syncfs(2), so partitions cannot literally share one call. Each file's sync
 * starts as soon as it is requested, so the syncs of partitions appended to
 * together run concurrently on libuv's thread pool, and ext4/xfs commit
 * concurrent syncs in the same journal transaction: the sharing the disk
 * allows. (Delaying a sync to the next event-loop turn was measured to add
 * latency and gain nothing: a partition's next write is queued behind its
 * current one anyway, so it could not have joined.) libuv's pool has 4
 * threads unless UV_THREADPOOL_SIZE says otherwise; more concurrent
 * partitions queue there.
 */
export class GroupCommitFlusher {
  private readonly files = new Map<Syncable, FileState>();
  private readonly counters: FlushStats = { syncs: 0, requests: 0 };
  private readonly syncListeners = new Set<(seconds: number) => void>();

  /** Syncs made and sync requests served since the log opened (a copy). */
  get stats(): Readonly<FlushStats> {
    return { ...this.counters };
  }

  /**
   * Calls `listener` after every fdatasync that succeeded, with its duration
   * in seconds (for the latency histogram, `log/metrics.ts`). A listener
   * must not throw.
   * @returns a function that removes the listener.
   */
  onSync(listener: (seconds: number) => void): () => void {
    this.syncListeners.add(listener);
    return () => this.syncListeners.delete(listener);
  }

  /**
   * Resolves after an fdatasync of `file` that started after this call.
   * Any number of calls may overlap, on one file or many: those waiting on
   * one file share its next sync. Rejects with the sync's error (every
   * caller that shared that sync gets it); the next call starts a new sync.
   */
  sync(file: Syncable): Promise<void> {
    this.counters.requests += 1;
    let state = this.files.get(file);
    if (state === undefined) {
      state = { running: false, next: null };
      this.files.set(file, state);
    }
    if (state.next === null) {
      state.next = waiter();
      const promise = state.next.promise;
      if (!state.running) this.start(file, state);
      return promise;
    }
    return state.next.promise;
  }

  private start(file: Syncable, state: FileState): void {
    const current = state.next!;
    state.next = null;
    state.running = true;
    this.counters.syncs += 1;
    const startedAt = performance.now();
    file.datasync().then(
      () => {
        const seconds = (performance.now() - startedAt) / 1000;
        for (const listener of this.syncListeners) listener(seconds);
        this.finish(file, state, current, null);
      },
      (error: unknown) => this.finish(file, state, current, error ?? new Error('fdatasync failed')),
    );
  }

  private finish(file: Syncable, state: FileState, current: Waiter, error: unknown): void {
    state.running = false;
    if (error === null) current.resolve();
    else current.reject(error);
    if (state.next !== null) this.start(file, state);
    else this.files.delete(file);
  }
}

function waiter(): Waiter {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
