/**
 * The options and the reports of request-reply (`request-reply.ts`,
 * docs/request-reply.md): the app's `requests` option, a request's own
 * options, and what the app reports (stats, unmatched replies).
 *
 * @module
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Envelope } from '../messaging/index.js';
import type { MessageContext, PublishOptions } from './context.js';

/** Longest `timeoutMs` of a request: one day. */
export const REQUEST_TIMEOUT_MS_MAX = 86_400_000;

/** Request-reply of an app: the `requests` option of `ConcordatApp.create` (docs/request-reply.md). */
export interface RequestReplyOptions {
  /**
   * This instance's name: its replies come on the topic
   * `<app name>.replies.<instanceId>`, read by a consumer group of the same
   * name. It must be unique among the processes running at once (two live
   * processes with one name split the replies between them, and each times
   * out on the other's). Give it a name that stays the same when the
   * instance restarts (a pod name, a StatefulSet ordinal) so that replies
   * that arrived while it was down are read by it, into its inbox, as
   * unmatched replies (see `onUnmatchedReply`); with the default, a
   * restarted process reads a new topic and leaves the old one (delete it
   * with `concordat topics delete`). 1..100 characters of a-z, A-Z, 0-9,
   * '_', '-'. @default `<hostname>-<pid>`, other characters replaced by '-';
   * `<hostname>-<pid>-<n>` for the n-th app of the same name created in one
   * process
   */
  instanceId?: string;
  /** How long a request waits for its reply, from its commit, in ms, unless the request says otherwise. Range 1..86400000. @default 30000 */
  timeoutMs?: number;
  /** Most requests waiting for their replies at once; one more throws LIMIT_EXCEEDED before anything is written. Range 1..1000000. @default 10000 */
  pendingMax?: number;
  /**
   * Called with a reply no waiting request took (it came after its request
   * timed out, after this process restarted, or after another reply to the
   * same request), inside the reply's own handler transaction: what it
   * writes through `context.manager` commits with the reply's inbox row,
   * exactly once. Such replies are counted
   * (`concordat_replies_unmatched_total{reason}`) and logged whether or not
   * this is given. What it throws fails the transaction (retried, then
   * dead-lettered to `<reply topic>.dlq`). @default none
   */
  onUnmatchedReply?: (reply: UnmatchedReply, context: MessageContext) => Promise<void>;
}

/**
 * The default `instanceId`: `<hostname>-<pid>` (other characters replaced by
 * '-', at most 100 characters); for the `n`-th requester of one app name in
 * this process (n > 1), `<hostname>-<pid>-<n>`, so that two apps of one name
 * in one process (tests, several instances side by side) do not share a reply
 * topic and its consumer group.
 */
export function defaultInstanceId(n: number): string {
  const base = `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_-]/g, '-');
  const suffix = n > 1 ? `-${n}` : '';
  return base.slice(-(100 - suffix.length)) + suffix;
}

/** Validates {@link RequestReplyOptions} (through `compileOptions`, which names the option in its error) and fills in the defaults. */
export const requestReplyOptionsSchema = z.strictObject({
  instanceId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,100}$/, "must be 1..100 characters of a-z, A-Z, 0-9, '_' and '-'")
    .default(() => defaultInstanceId(1)),
  timeoutMs: z.number().int().min(1).max(REQUEST_TIMEOUT_MS_MAX).default(30_000),
  pendingMax: z.number().int().min(1).max(1_000_000).default(10_000),
  onUnmatchedReply: z
    .custom<NonNullable<RequestReplyOptions['onUnmatchedReply']>>(
      (value) => typeof value === 'function',
      'must be a function (reply, context) => Promise<void>',
    )
    .optional(),
});

/** {@link RequestReplyOptions} validated, every default filled in (`instanceId` too). */
export type CompiledRequestReplyOptions = z.output<typeof requestReplyOptionsSchema>;

/** Options of one request: those of a published message, and its timeout. Not `deliverAt` / `delayMs`. */
export interface RequestOptions extends Omit<PublishOptions, 'deliverAt' | 'delayMs'> {
  /** How long to wait for the reply, from the request's commit, in ms. Range 1..86400000. @default the app's `requests.timeoutMs` (30000) */
  timeoutMs?: number;
}

/** A reply no waiting request took, as `onUnmatchedReply` gets it. */
export interface UnmatchedReply {
  /**
   * `late`: its request timed out before it came; `extra`: its request had a
   * reply already; `unknown`: this process does not know the request (sent
   * before a restart, forgotten after `pendingMax` later requests, or the
   * message carries no `inreplyto`).
   */
  reason: 'late' | 'extra' | 'unknown';
  /** The request's ID (the reply's `inreplyto`), if it carries one. */
  requestId: string | undefined;
  /** The request's topic, when this process remembers the request. */
  topic: string | undefined;
  /** For a late reply: ms from the request's timeout to this reply. */
  lateMs: number | undefined;
  /** Whether it is a failed reply (the responder dead-lettered the request); its data is then a `FailedReplyData`. */
  failed: boolean;
  /** The reply message. */
  message: Envelope;
}

/** What a requesting app did so far (`app.requestStats()`). */
export interface RequestStats {
  /** Requests whose transaction committed. */
  sent: number;
  answered: number;
  /** Failed replies, and replies the reply schema refused. */
  failed: number;
  timedOut: number;
  /** Requests whose transaction rolled back. */
  notSent: number;
  /** Requests still waiting when the app stopped. */
  stopped: number;
  /** Replies no waiting request took, by reason (see {@link UnmatchedReply}). */
  unmatched: { late: number; extra: number; unknown: number };
  /** Requests waiting for their reply now. */
  pending: number;
}
