import type { ConcordatApp } from '../app.js';

/** Implemented by a service that needs to do work after the app started (timers, caches). */
export interface OnApplicationStart {
  onApplicationStart(app: ConcordatApp): Promise<void> | void;
}

/** Implemented by a service that needs to release something before the app stops. */
export interface OnApplicationStop {
  onApplicationStop(app: ConcordatApp): Promise<void> | void;
}

/** Whether the service instance implements {@link OnApplicationStart}. */
export function hasStartHook(instance: object): instance is OnApplicationStart {
  return typeof (instance as Partial<OnApplicationStart>).onApplicationStart === 'function';
}

/** Whether the service instance implements {@link OnApplicationStop}. */
export function hasStopHook(instance: object): instance is OnApplicationStop {
  return typeof (instance as Partial<OnApplicationStop>).onApplicationStop === 'function';
}
