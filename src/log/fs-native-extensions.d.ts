/**
 * The part of `fs-native-extensions` (holepunchto; no types of its own) that
 * dir-lock.ts uses. On Linux `tryLock` takes an open-file-description lock
 * (fcntl F_OFD_SETLK) on the whole file; on macOS flock(2); on Windows
 * LockFileEx.
 */
declare module 'fs-native-extensions' {
  /**
   * Requests an exclusive (or, with `shared`, a shared) lock on the whole
   * file open as `fd`, without waiting. Returns true when granted, false when
   * another open file description holds a conflicting lock.
   * @throws the OS error for anything but contention (EBADF, ENOLCK, ...)
   */
  export function tryLock(fd: number, options?: { shared?: boolean }): boolean;
  /** Releases the lock held through `fd`. */
  export function unlock(fd: number): void;
}
