/**
 * Bytes of request frames the broker holds at once, across connections
 * (Kafka's `queued.max.request.bytes`): a connection reserves a frame's size
 * when its size prefix arrives and releases it when the request has been
 * answered. A frame that does not fit waits, with its connection paused,
 * until earlier reservations are released, first come first served.
 *
 * Reserving the whole frame up front (rather than the bytes received so far)
 * means a frame being read can always complete, so connections cannot
 * deadlock each other half-way through their frames.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiters: { bytes: number; grant: () => void }[] = [];

  constructor(readonly capacity: number) {}

  /** Bytes reserved now, granted waiters included. */
  get reserved(): number {
    return this.used;
  }

  /** Frames waiting for room, each with its connection paused. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Takes `bytes` now if they fit and nobody waits before us. */
  tryReserve(bytes: number): boolean {
    if (this.waiters.length > 0 || this.used + bytes > this.capacity) return false;
    this.used += bytes;
    return true;
  }

  /** Calls `grant` once `bytes` are reserved for the caller; returns a cancel function. */
  wait(bytes: number, grant: () => void): () => void {
    const waiter = { bytes, grant };
    this.waiters.push(waiter);
    this.drain();
    return () => {
      const at = this.waiters.indexOf(waiter);
      if (at >= 0) this.waiters.splice(at, 1);
      this.drain();
    };
  }

  /**
   * Returns `bytes` reserved earlier and grants waiters that now fit, first come first served.
   * @throws Error when more is released than was reserved (a bug in the caller)
   */
  release(bytes: number): void {
    this.used -= bytes;
    if (this.used < 0) throw new Error(`released more request bytes than were reserved (${this.used})`);
    this.drain();
  }

  private drain(): void {
    while (this.waiters.length > 0 && this.used + this.waiters[0]!.bytes <= this.capacity) {
      const waiter = this.waiters.shift()!;
      this.used += waiter.bytes;
      waiter.grant();
    }
  }
}
