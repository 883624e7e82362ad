import { z } from 'zod';
import { compileOptions } from './compile.js';
import type { RetryPolicyOptions } from './retry-options.js';

/** Options of `@XaParticipant(name, options)` (`transactions/two-phase/decorators.ts`). */
export interface XaParticipantOptions {
  /** Consumer group of the participant's command handler. @default the service's group */
  group?: string;
  /**
   * Retries of a failing prepare, commit or rollback. A `@Prepare` that still
   * fails after the last attempt (or at once, for a non-retriable error)
   * votes no. A commit or rollback that still fails is dead-lettered and sent
   * again by the coordinator later. Compiled with the handler's other
   * options when the app is created. @default the handler default
   */
  retry?: RetryPolicyOptions;
  /**
   * Longest `@Prepare` waits for a row lock, in ms, before the branch votes
   * no. Locks are often held by another branch's prepared transaction until
   * its decision arrives; a bound keeps a hot row from holding prepares up
   * past any deadline, and breaks the distributed deadlocks hot rows cause (two
   * global transactions each holding, prepared, a row the other waits for).
   * Range 1..3600000. @default 2000
   */
  lockTimeoutMs?: number;
}

const schema = z.object({ lockTimeoutMs: z.number().int().min(1).max(3_600_000).default(2000) });

/** What `@XaParticipant` reads of its options at decoration, every default applied (the lock timeout, in ms). */
export type CompiledXaParticipantOptions = z.output<typeof schema>;

/**
 * Validates and fills in the lock timeout of {@link XaParticipantOptions}
 * (`group` and `retry` go to the participant's handler as they are).
 * @throws ConcordatError CONFIG_INVALID naming the option as
 *   `xaParticipant(<name>).lockTimeoutMs`
 */
export function compileXaParticipantOptions(options: XaParticipantOptions, participant: string): CompiledXaParticipantOptions {
  return compileOptions(schema, { lockTimeoutMs: options.lockTimeoutMs }, `xaParticipant(${participant})`);
}
