import type { SaslMechanism } from '../../config/index.js';
import { KafkaError } from '../codec/error-codes.js';
import type { CredentialStore } from './credentials.js';
import type { SaslExchange } from './mechanism.js';
import { PlainExchange } from './plain.js';
import { ScramSha256Exchange } from './scram.js';

/** Where a connection is in its SASL exchange (the diagram on {@link SaslSession}). */
export const SaslState = { HANDSHAKE: 'handshake', AUTHENTICATE: 'authenticate', COMPLETE: 'complete', FAILED: 'failed' } as const;
export type SaslState = (typeof SaslState)[keyof typeof SaslState];

/** What a SaslAuthenticate answers: a Kafka error code (0 on success), its message, and the server's token. */
export interface SaslAuthenticateOutcome {
  errorCode: number;
  errorMessage: string | null;
  authBytes: Buffer;
}

/**
 * SASL state of one connection (KIP-43, KIP-152):
 *
 *   handshake ──SaslHandshake(mechanism)──► authenticate ──tokens──► complete
 *        │                                        │
 *        └────── anything else: connection closed  └─ failure: error sent, connection closed
 *
 * After SaslHandshake v0 the client sends bare SASL tokens in size-prefixed
 * frames with no Kafka header (kafka-python does this); after v1 it wraps
 * each in SaslAuthenticate. {@link raw} tells the connection which to expect.
 */
export class SaslSession {
  private current: SaslState = SaslState.HANDSHAKE;
  private exchange: SaslExchange | null = null;
  private rawTokens = false;
  private authenticatedAs: string | null = null;

  constructor(
    private readonly mechanisms: readonly SaslMechanism[],
    private readonly credentials: CredentialStore,
  ) {}

  /** Where the exchange stands. */
  get state(): SaslState {
    return this.current;
  }

  /** Whether the next frames are bare SASL tokens (after SaslHandshake v0). */
  get raw(): boolean {
    return this.rawTokens && this.current === SaslState.AUTHENTICATE;
  }

  /** The authenticated user, null until the exchange completes. */
  get principal(): string | null {
    return this.authenticatedAs;
  }

  /** Whether the exchange completed: requests other than SASL's are served only then. */
  get authenticated(): boolean {
    return this.current === SaslState.COMPLETE;
  }

  /** The mechanisms the broker offers, as SaslHandshake lists them. */
  get offered(): readonly SaslMechanism[] {
    return this.mechanisms;
  }

  /** SaslHandshake: picks the mechanism. Returns the Kafka error code. */
  handshake(mechanism: string, version: number): number {
    if (this.current !== SaslState.HANDSHAKE) return KafkaError.ILLEGAL_SASL_STATE;
    if (!(this.mechanisms as readonly string[]).includes(mechanism)) return KafkaError.UNSUPPORTED_SASL_MECHANISM;
    this.exchange = mechanism === 'PLAIN' ? new PlainExchange(this.credentials) : new ScramSha256Exchange(this.credentials);
    this.rawTokens = version === 0;
    this.current = SaslState.AUTHENTICATE;
    return KafkaError.NONE;
  }

  /** One client token (from SaslAuthenticate or a bare frame). */
  authenticate(token: Buffer): SaslAuthenticateOutcome {
    if (this.current !== SaslState.AUTHENTICATE || this.exchange === null) {
      const errorMessage = `unexpected SASL token in state ${this.current}`;
      this.current = SaslState.FAILED;
      return { errorCode: KafkaError.ILLEGAL_SASL_STATE, errorMessage, authBytes: Buffer.alloc(0) };
    }
    const step = this.exchange.step(token);
    if (step.kind === 'failed') {
      this.current = SaslState.FAILED;
      return { errorCode: KafkaError.SASL_AUTHENTICATION_FAILED, errorMessage: step.reason, authBytes: Buffer.alloc(0) };
    }
    if (step.kind === 'complete') {
      this.current = SaslState.COMPLETE;
      this.authenticatedAs = step.principal;
    }
    return { errorCode: KafkaError.NONE, errorMessage: null, authBytes: step.response };
  }
}
