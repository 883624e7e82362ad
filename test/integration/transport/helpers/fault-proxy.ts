import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a broker that rewrites the error code of chosen
 * responses: the seam for faults a real broker does not produce on demand
 * (librdkafka's mock cluster, for one, refuses a SyncGroup with
 * INVALID_REQUEST under load). Requests pass through untouched; the proxy
 * reads each request's header (api_key, api_version, correlation_id; Kafka
 * protocol guide, "Request Header v0+") to know which response answers it.
 * Only non-flexible response versions are rewritten (their error code sits
 * at a fixed place); point the broker's `advertisedPort` at the proxy so
 * clients come back through it after bootstrapping.
 */
export interface FaultProxy {
  readonly port: number;
  /** The broker's port; set before the first client connects. */
  target: number;
  /**
   * Answers the next `count` responses to `apiKey` with `errorCode`.
   * `errorOffset(version)` is the error code's position after the
   * correlation ID (e.g. SyncGroup: 0 in v0, 4 in v1–v3, after throttle_time_ms).
   */
  failNext(apiKey: number, count: number, errorCode: number, errorOffset: (version: number) => number): void;
  /** How many responses were rewritten so far. */
  readonly rewritten: number;
  close(): Promise<void>;
}

export async function startFaultProxy(): Promise<FaultProxy> {
  const server: Server = createServer();
  const sockets = new Set<Socket>();
  let plan: { apiKey: number; left: number; errorCode: number; errorOffset: (version: number) => number } | null = null;
  let rewritten = 0;
  server.on('connection', (downstream) => {
    const upstream = connect({ port: proxy.target, host: '127.0.0.1' });
    sockets.add(downstream).add(upstream);
    const versions = new Map<number, number>();
    framer(downstream, (frame) => {
      if (plan !== null && frame.readInt16BE(0) === plan.apiKey) versions.set(frame.readInt32BE(4), frame.readInt16BE(2));
      upstream.write(sized(frame));
    });
    framer(upstream, (frame) => {
      const version = versions.get(frame.readInt32BE(0));
      if (version !== undefined && plan !== null && plan.left > 0) {
        versions.delete(frame.readInt32BE(0));
        frame.writeInt16BE(plan.errorCode, 4 + plan.errorOffset(version));
        plan.left -= 1;
        rewritten += 1;
      }
      downstream.write(sized(frame));
    });
    const end = (): void => {
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: FaultProxy = {
    port: (server.address() as AddressInfo).port,
    target: 0,
    failNext(apiKey, count, errorCode, errorOffset) {
      plan = { apiKey, left: count, errorCode, errorOffset };
    },
    get rewritten() {
      return rewritten;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  return proxy;
}

/** Calls `onFrame` with each size-prefixed frame's body as it completes. */
function framer(socket: Socket, onFrame: (frame: Buffer) => void): void {
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4 && buffered.length >= 4 + buffered.readInt32BE(0)) {
      const size = buffered.readInt32BE(0);
      onFrame(Buffer.from(buffered.subarray(4, 4 + size)));
      buffered = buffered.subarray(4 + size);
    }
  });
}

function sized(frame: Buffer): Buffer {
  const size = Buffer.alloc(4);
  size.writeInt32BE(frame.length);
  return Buffer.concat([size, frame]);
}
