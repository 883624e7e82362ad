import { connect, type Socket } from 'node:net';
import { Writer } from '../../../../src/broker/codec/writer.js';

/**
 * A bare TCP client for the broker's wire protocol: sends frames (well formed
 * or not) and reads size-prefixed responses, with nothing of a real client's
 * retries or version negotiation in between. Tests use it to check exact
 * bytes and what happens to a connection after a bad frame.
 */
export class RawClient {
  private buffered = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.ended = true;
        this.wake();
        resolve();
      });
    });
    socket.on('error', () => {});
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host }, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Writes bytes as they are (no size prefix added). */
  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Writes `frame` with its INT32 size prefix. */
  sendFrame(frame: Buffer): void {
    const size = Buffer.alloc(4);
    size.writeInt32BE(frame.length);
    this.socket.write(Buffer.concat([size, frame]));
  }

  /** Sends a request with a v1 (or, when `flexible`, v2) header. */
  send(apiKey: number, apiVersion: number, correlationId: number, body: Buffer, flexible = false, clientId = 'raw-test'): void {
    const header = new Writer().int16(apiKey).int16(apiVersion).int32(correlationId).nullableString(clientId);
    if (flexible) header.emptyTaggedFields();
    this.sendFrame(Buffer.concat([header.toBuffer(), body]));
  }

  /** The next response frame (without its size prefix); rejects if the connection closes first. */
  async readFrame(timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buffered.length >= 4) {
        const size = this.buffered.readInt32BE(0);
        if (this.buffered.length >= 4 + size) {
          const frame = this.buffered.subarray(4, 4 + size);
          this.buffered = this.buffered.subarray(4 + size);
          return frame;
        }
      }
      if (this.ended) throw new Error('connection closed before a response arrived');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends a request and returns the response body after the correlation ID (header v0). */
  async request(apiKey: number, apiVersion: number, body: Buffer, correlationId = 1): Promise<Buffer> {
    this.send(apiKey, apiVersion, correlationId, body, false);
    const frame = await this.readFrame();
    const got = frame.readInt32BE(0);
    if (got !== correlationId) throw new Error(`correlation ID ${got}, expected ${correlationId}`);
    return frame.subarray(4);
  }

  /** Resolves when the broker closes the connection; rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  close(): void {
    this.socket.destroy();
  }
}
