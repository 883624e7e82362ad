/**
 * The wire format of request-reply (docs/request-reply.md), shared by the
 * responder (a handler's return value, `@OnMessage`) and the requester
 * (`request-reply.ts`). Both directions are ordinary CloudEvents through
 * the outbox and the inbox; two extension attributes (CloudEvents §3.1.1
 * names: lower-case letters and digits) tie them together:
 *
 * - a **request** is a message on its topic carrying `replyto`: the topic
 *   its reply goes to (the requester's reply topic, one per app instance);
 * - a **reply** is a message on that topic carrying `inreplyto`: the request's
 *   `id`. It also inherits what any message published by a handler inherits
 *   (`causationid` = the request's ID, its `correlationid`, `globaltxid` and
 *   trace context). Its `type` says how the request ended: {@link ReplyType}.
 *
 * @module
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { ConcordatError, ErrorCode } from '../errors.js';
import { topicNameProblem } from '../log/index.js';
import { createEnvelope, type Envelope } from '../messaging/index.js';
import { toOutboxRecords, type OutboxRecord } from '../outbox/index.js';
import type { MessageContext } from './context.js';
import { validateNow } from './topic.js';

/** The CloudEvents extension attributes of request-reply (see the module comment). */
export const ReplyAttribute = {
  /** On a request: the topic of its reply. */
  REPLY_TO: 'replyto',
  /** On a reply: the `id` of the request it answers. */
  IN_REPLY_TO: 'inreplyto',
} as const;

/** The CloudEvents `type` of a reply. */
export const ReplyType = {
  /** The handler returned; `data` is what it returned. */
  OK: 'concordat.reply',
  /** The handler failed for good (the request was dead-lettered); `data` is a {@link FailedReplyData}. */
  FAILED: 'concordat.reply.failed',
} as const;

/** The data of a {@link ReplyType.FAILED} reply: what the dead letter records. */
export interface FailedReplyData {
  /** The error's code (a ConcordatError's) or name (`Error`, `TypeError`...). */
  code: string;
  /** `Name: message` of the error, at most 1,024 characters. */
  message: string;
  /** `Service.method` of the handler that failed. */
  handler: string;
  /** Its consumer group. */
  consumer: string;
  /** Attempts made; 0 when the request could not be decoded or validated. */
  attempts: number;
  /** The row in `concordat.dead_letter` (`concordat dlq show <id>`, `concordat dlq replay <id>`). */
  deadLetterId: string;
}

/** Longest error message a failed reply carries. */
const FAILED_MESSAGE_MAX = 1024;

/**
 * Publishes a handler's return value as the reply to the request it
 * handled, through its context, so the reply is written to the outbox in
 * the handler's transaction: it exists if and only if the handler's effect
 * commits, and a redelivered request (a duplicate to the inbox) runs no
 * handler and sends no second reply. Nothing happens when the message is
 * not a request or when the handler returned `undefined` (a consumer group
 * that only observes a request topic stays silent; a responder with nothing
 * to say returns `null`).
 *
 * @param schema the topic's reply schema, if any: `result` is checked against it first.
 * @throws ValidationError VALIDATION_FAILED when `result` does not satisfy `schema` (not
 *   retriable: the request is dead-lettered and its requester gets a failed reply).
 * @throws ConcordatError INVALID_TOPIC_EXCEPTION when the request's `replyto` is not a topic name.
 * @throws ConcordatError CONFIG_INVALID when `schema` validates asynchronously.
 */
export function sendReply(context: MessageContext, result: unknown, schema: StandardSchemaV1 | undefined): void {
  const replyTo = context.message.extensions?.[ReplyAttribute.REPLY_TO];
  if (replyTo === undefined || result === undefined) return;
  const request = context.message;
  if (schema !== undefined) {
    validateNow(schema, result, `the reply to request ${request.id} on topic '${context.delivery.topic}'`, {
      topic: context.delivery.topic,
      requestId: request.id,
    });
  }
  context.publish(replyTo, result, { type: ReplyType.OK, extensions: { [ReplyAttribute.IN_REPLY_TO]: request.id } });
}

/**
 * The failed reply to `request`, for the transaction that dead-letters it:
 * so its requester learns of the failure at once instead of at its timeout.
 * None when `request` is not a request, could not be decoded, or names a
 * reply topic the log would refuse.
 *
 * @param source CloudEvents `source`: the responder's service name.
 */
export function failedReplyRecords(request: Envelope | undefined, source: string, failure: FailedReplyData): OutboxRecord[] {
  const replyTo = request?.extensions?.[ReplyAttribute.REPLY_TO];
  if (request === undefined || replyTo === undefined || topicNameProblem(replyTo) !== undefined) return [];
  const data: FailedReplyData = { ...failure, message: failure.message.slice(0, FAILED_MESSAGE_MAX) };
  const envelope = createEnvelope({
    type: ReplyType.FAILED,
    source,
    data,
    causationid: request.id,
    correlationid: request.correlationid ?? request.id,
    ...(request.globaltxid !== undefined && { globaltxid: request.globaltxid }),
    ...(request.traceparent !== undefined && { traceparent: request.traceparent }),
    ...(request.tracestate !== undefined && { tracestate: request.tracestate }),
    extensions: { [ReplyAttribute.IN_REPLY_TO]: request.id },
  });
  return toOutboxRecords([{ topic: replyTo, envelope }]);
}

/**
 * Thrown by `pending.reply()` / `app.request()` when the responder's handler
 * failed for good on the request (code REQUEST_FAILED, not retriable): the
 * failed reply it sent with the request's dead letter.
 */
export class RequestFailedError extends ConcordatError {
  /** What the responder reported. */
  readonly failure: FailedReplyData;

  /** @param failure the failed reply's data (see {@link asFailedReply}) */
  constructor(topic: string, requestId: string, failure: FailedReplyData) {
    super(
      `request ${requestId} on topic '${topic}' failed in its responder ${failure.handler} (consumer group '${failure.consumer}') ` +
        `after ${failure.attempts} attempt(s): ${failure.message} [${failure.code}]; the request is dead letter ${failure.deadLetterId} ` +
        `there: fix the cause, then 'concordat dlq replay ${failure.deadLetterId}' runs it again (its reply then comes too late for this call)`,
      { code: ErrorCode.REQUEST_FAILED, context: { topic, requestId, ...failure } },
    );
    this.failure = failure;
  }
}

/** The data of a failed reply as a {@link FailedReplyData}, each field missing or of the wrong type filled in (a responder of another version may send less). */
export function asFailedReply(data: unknown): FailedReplyData {
  const fields = (typeof data === 'object' && data !== null ? data : {}) as Partial<Record<keyof FailedReplyData, unknown>>;
  const text = (value: unknown, fallback: string): string => (typeof value === 'string' ? value : fallback);
  return {
    code: text(fields.code, 'unknown'),
    message: text(fields.message, 'no error message in the failed reply'),
    handler: text(fields.handler, 'unknown handler'),
    consumer: text(fields.consumer, 'unknown'),
    attempts: typeof fields.attempts === 'number' ? fields.attempts : 0,
    deadLetterId: text(fields.deadLetterId, 'unknown'),
  };
}
