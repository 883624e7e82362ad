import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';

/**
 * A frame fuzzer for the broker: takes the request frames real clients sent
 * (test/unit/broker/fixtures) and sends mutated copies of them, and frames
 * of random bytes, over one connection at a time, reconnecting whenever the
 * broker closes it. Deterministic for a given seed (xorshift32), so a
 * failure can be replayed.
 */
export interface FuzzStats {
  frames: number;
  responses: number;
  /** Connections the broker closed (a frame it refused). */
  closedByBroker: number;
  connections: number;
}

export function loadCorpus(fixturesDir: string): Buffer[] {
  const corpus: Buffer[] = [];
  for (const client of readdirSync(fixturesDir, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const file of readdirSync(join(fixturesDir, client.name)).filter((f) => f.endsWith('.hex') && !f.startsWith('SaslRawToken'))) {
      corpus.push(Buffer.from(readFileSync(join(fixturesDir, client.name, file), 'utf8').trim(), 'hex'));
    }
  }
  return corpus;
}

export class Random {
  constructor(private state: number) {
    if (this.state === 0) this.state = 0x9e3779b9;
  }

  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  below(n: number): number {
    return this.next() % n;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i += 1) out[i] = this.below(256);
    return out;
  }
}

const INTERESTING_INT32 = [0, 1, -1, 0x7fffffff, -0x80000000, 0x7fff, 0x8000, 0xffff, 255, 256];

/** One mutated copy of `frame` (or, sometimes, random bytes). */
export function mutate(frame: Buffer, random: Random): Buffer {
  const out = Buffer.from(frame);
  switch (random.below(9)) {
    case 0: {
      for (let i = 0, n = 1 + random.below(8); i < n; i += 1) {
        const at = random.below(out.length);
        out[at] = out[at]! ^ (1 << random.below(8));
      }
      return out;
    }
    case 1: {
      for (let i = 0, n = 1 + random.below(4); i < n; i += 1) out[random.below(out.length)] = random.below(256);
      return out;
    }
    case 2: {
      if (out.length < 4) return out;
      const at = random.below(out.length - 3);
      out.writeInt32BE(INTERESTING_INT32[random.below(INTERESTING_INT32.length)]! | 0, at);
      return out;
    }
    case 3: {
      if (out.length < 2) return out;
      // An INT16 length or count somewhere: the most common thing a parser trusts.
      const at = random.below(out.length - 1);
      out.writeInt16BE([0, -1, -2, 0x7fff, 1][random.below(5)]!, at);
      return out;
    }
    case 4:
      return out.subarray(0, random.below(out.length + 1));
    case 5:
      return Buffer.concat([out, random.bytes(1 + random.below(64))]);
    case 6: {
      const at = random.below(out.length + 1);
      return Buffer.concat([out.subarray(0, at), random.bytes(1 + random.below(16)), out.subarray(at)]);
    }
    case 7: {
      const at = random.below(out.length + 1);
      return Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + random.below(16)))]);
    }
    default:
      return random.bytes(random.below(200));
  }
}

/** Frames `frame` with its size prefix; now and then with a wrong one. */
function sized(frame: Buffer, random: Random): Buffer {
  const size = Buffer.alloc(4);
  const roll = random.below(50);
  size.writeInt32BE(roll === 0 ? 0x7fffffff : roll === 1 ? -1 : roll === 2 ? frame.length + 1000 : frame.length);
  return Buffer.concat([size, frame]);
}

/**
 * Sends fuzzed frames to `port` until `signal` aborts. After each frame
 * waits briefly for a response or a close; a connection with too many
 * unanswered frames (long polls, acks 0, a frame the broker is still
 * reading) is dropped and replaced.
 */
export async function fuzz(port: number, corpus: Buffer[], seed: number, signal: AbortSignal): Promise<FuzzStats> {
  const random = new Random(seed);
  const stats: FuzzStats = { frames: 0, responses: 0, closedByBroker: 0, connections: 0 };
  while (!signal.aborted) {
    const socket = await open(port);
    stats.connections += 1;
    let closed = false;
    let unanswered = 0;
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4 && buffered.length >= 4 + buffered.readInt32BE(0)) {
        buffered = buffered.subarray(4 + buffered.readInt32BE(0));
        stats.responses += 1;
        unanswered = Math.max(0, unanswered - 1);
      }
    });
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => {});
    while (!closed && !signal.aborted && unanswered < 20) {
      const base = corpus[random.below(corpus.length)]!;
      socket.write(sized(mutate(base, random), random));
      stats.frames += 1;
      unanswered += 1;
      await new Promise((resolve) => setTimeout(resolve, random.below(3)));
    }
    if (closed) stats.closedByBroker += 1;
    socket.destroy();
  }
  return stats;
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => resolve(socket));
    socket.once('error', reject);
  });
}
