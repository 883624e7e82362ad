/*
 * One client connection to the broker: framing (a 4-byte size, then the request), the request header, authentication
 * state, and in-order responses with back-pressure. One concept.
 */
import type { Socket } from 'node:net';
import { ConcordatError, describeError, ErrorCode } from '../errors.js';
import type { Logger } from '../observability/index.js';
import { isFlexible, requestHeaderVersion, responseHeaderVersion, type AnyApi } from './apis/api.js';
import { KafkaError, kafkaErrorCodeOf } from './codec/error-codes.js';
import { peekApi, readRequestHeader, readRequestHeaderTail, REQUEST_HEADER_MIN_BYTES, writeResponseHeader, type RequestHeader } from './codec/header.js';
import { Reader } from './codec/reader.js';
import { Writer } from './codec/writer.js';
import type { BrokerContext, ConnectionContext, RequestContext } from './context.js';
import { SaslSession } from './sasl/session.js';
import type { CredentialStore } from './sasl/credentials.js';

interface Slot {
  done: boolean;
  chunks: Buffer[];
  bytes: number;
  /** Bytes of the request frame reserved in the broker's request budget until this slot is answered. */
  reserved: number;
  /** `performance.now()` when its request was dispatched, for the latency histogram. */
  startedAt?: number;
}

const SIZE_BYTES = 4;
/** Kafka's principal of an unauthenticated connection. */
const ANONYMOUS = 'User:ANONYMOUS';

/** `::ffff:10.0.0.1` as `10.0.0.1`: ACL hosts name IPv4 clients by their IPv4 address, as Kafka does. */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}

/**
 * One client connection: size-prefixed framing, request dispatch, and
 * responses written in request order.
 *
 * Frames are `INT32 size` + `size` bytes (https://kafka.apache.org/protocol#protocol_common).
 * A frame larger than `requestBytesMax`, one that does not parse, an API or
 * version not served, or a request before SASL authentication closes this
 * connection with a logged reason; the frame is not acted on, so nothing
 * stored is touched and no other connection notices.
 *
 * Requests are handled as soon as they are decoded, so a Produce waiting
 * for its fsync does not hold back the next one (they share one group
 * commit), but responses leave in request order, as clients expect. The
 * handler is called synchronously in frame order, so state a handler
 * changes before its first `await` (SASL, the order of appends) follows the
 * order of the requests. Reading pauses while `inFlightRequestsMax`
 * requests are unanswered, `queuedResponseBytesMax` bytes wait for the
 * socket, or the next frame does not fit the broker-wide request budget
 * (`requestBytesInFlightMax`, byte-budget.ts) until it is answered.
 */
export class Connection implements ConnectionContext {
  readonly sasl: SaslSession | null;
  readonly clientHost: string;
  private readonly logger: Logger;
  private readonly abort = new AbortController();
  private readonly incoming: Buffer[] = [];
  private incomingBytes = 0;
  private frameBytes: number | null = null;
  /** Whether {@link frameBytes} are reserved in the request budget. */
  private frameReserved = false;
  /** Reserved bytes of the frame being handed to onFrame, until a slot takes them. */
  private unclaimedBytes = 0;
  private cancelBudgetWait: (() => void) | null = null;
  private readonly slots: Slot[] = [];
  private inFlight = 0;
  private paused = false;
  private waitingForBudget = false;
  private closed = false;
  private closeReason: string | null = null;
  private authTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly socket: Socket,
    readonly id: number,
    readonly remote: string,
    private readonly broker: BrokerContext,
    credentials: CredentialStore | null,
    private readonly onClosed: (connection: Connection) => void,
    /** `User:<subject>` of a verified TLS client certificate (mutual TLS), or null. */
    private readonly certificatePrincipal: string | null = null,
  ) {
    this.logger = broker.logger.child({ connection: id, remote });
    this.clientHost = plainAddress(socket.remoteAddress ?? '');
    const sasl = broker.options.sasl;
    this.sasl = sasl !== null && credentials !== null ? new SaslSession(sasl.mechanisms, credentials, broker.options.connectionsMaxReauthMs) : null;
    socket.setNoDelay(true);
    socket.setTimeout(broker.options.connectionIdleMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.resumeIfRoom());
    socket.on('timeout', () => {
      if (this.inFlight === 0) this.close(`idle for ${broker.options.connectionIdleMs} ms`, 'debug');
    });
    socket.on('error', (error) => this.close(`socket error: ${error.message}`, 'debug'));
    socket.on('close', () => this.finish());
    if (this.sasl !== null) {
      const timeoutMs = broker.options.authenticationTimeoutMs;
      this.authTimer = setTimeout(() => {
        if (!this.sasl?.authenticated) this.close(`not authenticated within ${timeoutMs} ms`);
      }, timeoutMs);
      this.authTimer.unref();
    }
  }

  /** Who the connection acts as (see {@link ConnectionContext.principal}). */
  get principal(): string {
    const user = this.sasl?.principal ?? null;
    if (user !== null) return `User:${user}`;
    return this.certificatePrincipal ?? ANONYMOUS;
  }

  /** Aborted when this connection closes: its long polls stop waiting. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** True once the connection closed (or began closing). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Requests received and not yet answered. */
  get pendingRequests(): number {
    return this.inFlight;
  }

  /** Closes the connection once the responses already queued (and the current one) are written; the first reason given is logged. */
  closeAfterResponse(reason: string): void {
    this.closeReason ??= reason;
  }

  /** Closes the connection with a logged reason; in-flight requests' responses are dropped. */
  close(reason: string, level: 'warn' | 'info' | 'debug' = 'warn'): void {
    if (this.closed) return;
    this.closed = true;
    this.logger[level]({ reason }, 'closing connection');
    this.abort.abort(new ConcordatError(`connection closed: ${reason}`, { code: ErrorCode.TRANSPORT_CLOSED }));
    this.socket.destroy();
    this.releasePartialFrame();
  }

  /** Gives back the budget of a frame that will never be read, or stops waiting for it. */
  private releasePartialFrame(): void {
    this.cancelBudgetWait?.();
    this.cancelBudgetWait = null;
    if (this.frameReserved && this.frameBytes !== null) this.broker.requestBudget.release(this.frameBytes);
    this.frameReserved = false;
    this.frameBytes = null;
  }

  private finish(): void {
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.releasePartialFrame();
    if (!this.closed) {
      this.closed = true;
      this.abort.abort(new ConcordatError('connection closed by the client', { code: ErrorCode.TRANSPORT_CLOSED }));
      this.logger.debug('connection closed by the client');
    }
    this.onClosed(this);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.incoming.push(chunk);
    this.incomingBytes += chunk.length;
    this.readFrames();
  }

  private readFrames(): void {
    while (!this.closed && !this.waitingForBudget && this.inFlight < this.broker.options.inFlightRequestsMax) {
      if (this.frameBytes === null) {
        if (this.incomingBytes < SIZE_BYTES) break;
        const size = this.take(SIZE_BYTES).readInt32BE(0);
        if (!this.acceptSize(size)) return;
        this.frameBytes = size;
      }
      if (!this.frameReserved && !this.reserveFrame(this.frameBytes)) break;
      if (this.incomingBytes < this.frameBytes) break;
      const frame = this.take(this.frameBytes);
      this.unclaimedBytes = this.frameBytes;
      this.frameBytes = null;
      this.frameReserved = false;
      this.onFrame(frame);
      // A frame refused before it became a request gives its budget back at once.
      if (this.unclaimedBytes > 0) this.broker.requestBudget.release(this.unclaimedBytes);
      this.unclaimedBytes = 0;
    }
    this.pauseIfFull();
  }

  /** Reserves the frame's bytes, or pauses the connection until the budget has room. */
  private reserveFrame(bytes: number): boolean {
    const budget = this.broker.requestBudget;
    if (budget.tryReserve(bytes)) {
      this.frameReserved = true;
      return true;
    }
    this.waitingForBudget = true;
    this.pauseIfFull();
    this.cancelBudgetWait = budget.wait(bytes, () => {
      this.cancelBudgetWait = null;
      this.waitingForBudget = false;
      this.frameReserved = true;
      this.resumeIfRoom();
    });
    return false;
  }

  private acceptSize(size: number): boolean {
    const max = this.broker.options.requestBytesMax;
    if (size > max) {
      this.close(`frame of ${size} bytes exceeds requestBytesMax ${max}`);
      return false;
    }
    const min = this.sasl?.raw ? 0 : REQUEST_HEADER_MIN_BYTES;
    if (size < min) {
      this.close(`frame of ${size} bytes is shorter than a request header (${min} bytes)`);
      return false;
    }
    return true;
  }

  /** Removes and returns the next `bytes` bytes of input; a view when they sit in one chunk. */
  private take(bytes: number): Buffer {
    const first = this.incoming[0]!;
    let out: Buffer;
    if (first.length >= bytes) {
      out = first.subarray(0, bytes);
      if (first.length === bytes) this.incoming.shift();
      else this.incoming[0] = first.subarray(bytes);
    } else {
      out = Buffer.allocUnsafe(bytes);
      let filled = 0;
      while (filled < bytes) {
        const chunk = this.incoming[0]!;
        const used = Math.min(chunk.length, bytes - filled);
        chunk.copy(out, filled, 0, used);
        filled += used;
        if (used === chunk.length) this.incoming.shift();
        else this.incoming[0] = chunk.subarray(used);
      }
    }
    this.incomingBytes -= bytes;
    return out;
  }

  private onFrame(frame: Buffer): void {
    if (this.sasl?.raw) {
      this.onRawSaslToken(frame);
      return;
    }
    let header: RequestHeader | null = null;
    try {
      const reader = new Reader(frame, this.broker.readerLimits);
      header = readRequestHeader(reader);
      const api = this.broker.apis.get(header.apiKey);
      if (api === undefined) throw this.refuse(`API key ${header.apiKey} is not served`);
      if (header.apiKey === 18 && header.apiVersion > api.maxVersion) {
        // KIP-511: answer an ApiVersions version we do not know with a v0 body and
        // UNSUPPORTED_VERSION, so the client can retry with one we do.
        this.respond(header, api, 0, api.errorResponse(null, KafkaError.UNSUPPORTED_VERSION, this.contextFor(header)));
        return;
      }
      if (header.apiVersion < api.minVersion || header.apiVersion > api.maxVersion) {
        throw this.refuse(`${api.name} v${header.apiVersion} is not served (v${api.minVersion}-v${api.maxVersion})`);
      }
      if (this.sasl !== null && !this.sasl.authenticated && api.beforeAuthentication !== true) {
        throw this.refuse(`${api.name} before SASL authentication completed`);
      }
      if (this.sasl?.expired && api.beforeAuthentication !== true) {
        // KIP-368: the session's lifetime (connectionsMaxReauthMs) ended without a re-authentication.
        this.close(
          `SASL session expired (connectionsMaxReauthMs ${this.broker.options.connectionsMaxReauthMs} ms) and the client sent ${api.name} instead of re-authenticating`,
          'info',
        );
        return;
      }
      readRequestHeaderTail(reader, requestHeaderVersion(api, header.apiVersion));
      reader.flexible = isFlexible(api, header.apiVersion);
      const request: unknown = api.decode(reader, header.apiVersion);
      this.dispatch(header, api, request);
    } catch (error) {
      const peek = header ?? peekApi(frame);
      const reason = error instanceof ConcordatError ? error.message : `unexpected error decoding a request: ${describeError(error)}`;
      this.close(reason);
      if (!(error instanceof ConcordatError)) this.logger.error({ err: error, api: peek }, 'decoder bug');
    }
  }

  private refuse(reason: string): ConcordatError {
    return new ConcordatError(reason, { code: ErrorCode.FRAME_INVALID });
  }

  private dispatch(header: RequestHeader, api: AnyApi, request: unknown): void {
    const slot = this.enqueue();
    slot.startedAt = performance.now();
    const context = this.contextFor(header);
    const fail = (error: unknown): unknown => {
      const code = kafkaErrorCodeOf(error);
      if (code === KafkaError.UNKNOWN_SERVER_ERROR) {
        this.logger.error({ err: error, api: api.name, version: header.apiVersion }, 'request failed');
      }
      return api.errorResponse(request, code, context);
    };
    let result: unknown;
    try {
      result = api.handle(request, context);
    } catch (error) {
      result = fail(error);
    }
    if (result instanceof Promise) {
      result.then(
        (response: unknown) => this.complete(slot, header, api, response),
        (error: unknown) => this.complete(slot, header, api, fail(error)),
      );
    } else {
      this.complete(slot, header, api, result);
    }
  }

  private contextFor(header: RequestHeader): RequestContext {
    return { header, broker: this.broker, connection: this };
  }

  private enqueue(): Slot {
    const slot: Slot = { done: false, chunks: [], bytes: 0, reserved: this.unclaimedBytes };
    this.unclaimedBytes = 0;
    this.slots.push(slot);
    this.inFlight += 1;
    return slot;
  }

  private respond(header: RequestHeader, api: AnyApi, version: number, response: unknown): void {
    const slot = this.enqueue();
    this.complete(slot, { ...header, apiVersion: version }, api, response);
  }

  private complete(slot: Slot, header: RequestHeader, api: AnyApi, response: unknown): void {
    if (slot.startedAt !== undefined) this.broker.metrics.observeRequest(header.apiKey, api.name, (performance.now() - slot.startedAt) / 1000);
    this.inFlight -= 1;
    slot.done = true;
    this.broker.requestBudget.release(slot.reserved);
    slot.reserved = 0;
    if (response !== null && !this.closed) {
      try {
        const writer = new Writer();
        writer.int32(0); // size, filled in below
        writeResponseHeader(writer, header.correlationId, responseHeaderVersion(api, header.apiVersion));
        writer.flexible = isFlexible(api, header.apiVersion);
        api.encode(writer, header.apiVersion, response);
        this.fill(slot, writer);
      } catch (error) {
        this.logger.error({ err: error, api: api.name, version: header.apiVersion }, 'encoder bug');
        this.close(`could not encode the ${api.name} response: ${describeError(error)}`);
        return;
      }
    }
    this.flush();
    this.pauseIfFull();
    this.resumeIfRoom();
  }

  private fill(slot: Slot, writer: Writer): void {
    const chunks = writer.toChunks();
    const total = writer.length;
    chunks[0]!.writeInt32BE(total - SIZE_BYTES, 0);
    slot.chunks = chunks;
    slot.bytes = total;
  }

  private onRawSaslToken(token: Buffer): void {
    const outcome = this.sasl!.authenticate(token);
    if (outcome.errorCode !== KafkaError.NONE) {
      this.close(`SASL authentication failed: ${outcome.errorMessage ?? 'unknown reason'}`);
      return;
    }
    const slot = this.enqueue();
    this.inFlight -= 1;
    slot.done = true;
    this.broker.requestBudget.release(slot.reserved);
    slot.reserved = 0;
    const writer = new Writer();
    writer.int32(outcome.authBytes.length).raw(outcome.authBytes);
    slot.chunks = writer.toChunks();
    slot.bytes = writer.length;
    this.flush();
  }

  private flush(): void {
    if (this.closed) return;
    let wrote = false;
    while (this.slots.length > 0 && this.slots[0]!.done) {
      const slot = this.slots.shift()!;
      if (!wrote && slot.chunks.length > 0) this.socket.cork();
      for (const chunk of slot.chunks) {
        this.socket.write(chunk);
        wrote = true;
      }
    }
    if (wrote) this.socket.uncork();
    if (this.closeReason !== null && this.slots.length === 0) {
      this.closed = true;
      this.logger.info({ reason: this.closeReason }, 'closing connection after the response');
      this.abort.abort(new ConcordatError(`connection closed: ${this.closeReason}`, { code: ErrorCode.TRANSPORT_CLOSED }));
      this.socket.end();
    }
  }

  private pauseIfFull(): void {
    if (this.closed || this.paused) return;
    const options = this.broker.options;
    if (this.waitingForBudget || this.inFlight >= options.inFlightRequestsMax || this.socket.writableLength >= options.queuedResponseBytesMax) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private resumeIfRoom(): void {
    if (this.closed) return;
    const options = this.broker.options;
    if (this.paused && !this.waitingForBudget && this.inFlight < options.inFlightRequestsMax && this.socket.writableLength < options.queuedResponseBytesMax) {
      this.paused = false;
      this.socket.resume();
      this.readFrames();
    }
  }
}
