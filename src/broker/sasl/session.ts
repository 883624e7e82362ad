import type { SaslMechanism } from '../../config/index.js';
import { KafkaError } from '../codec/error-codes.js';
import type { CredentialStore } from './credentials.js';
import type { SaslExchange } from './mechanism.js';
import { PlainExchange } from './plain.js';
import { ScramExchange } from './scram.js';

/** Where a connection is in its SASL exchange (the diagram on {@link SaslSession}). */
export const SaslState = { HANDSHAKE: 'handshake', AUTHENTICATE: 'authenticate', COMPLETE: 'complete', FAILED: 'failed' } as const;
/** One of the {@link SaslState} values. */
export type SaslState = (typeof SaslState)[keyof typeof SaslState];

/** What a SaslAuthenticate answers: a Kafka error code (0 on success), its message, and the server's token. */
export interface SaslAuthenticateOutcome {
  errorCode: number;
  errorMessage: string | null;
  authBytes: Buffer;
  /** SaslAuthenticate v1: ms until the session ends once this step completed it; 0 for none (or not completed). */
  sessionLifetimeMs: number;
}

/**
 * SASL state of one connection (KIP-43, KIP-152, KIP-368):
 *
 *   handshake ──SaslHandshake(mechanism)──► authenticate ──tokens──► complete
 *        │                                        │    ▲                  │
 *        └────── anything else: connection closed  │    └─ SaslHandshake v1 (re-authentication)
 *                                                  └─ failure: error sent, connection closed
 *
 * After SaslHandshake v0 the client sends bare SASL tokens in size-prefixed
 * frames with no Kafka header (kafka-python does this); after v1 it wraps
 * each in SaslAuthenticate. {@link raw} tells the connection which to expect.
 *
 * Re-authentication (KIP-368, Kafka's `connections.max.reauth.ms`): with
 * `reauthMs` > 0 a session lasts that long from each completed
 * authentication, and SaslAuthenticate v1's session_lifetime_ms tells the
 * client so; the client authenticates again on the same connection
 * (SaslHandshake v1 with the same mechanism, then SaslAuthenticate, as the
 * same principal) before it ends. The connection closes a connection whose
 * session {@link expired} on its next request other than SaslHandshake,
 * SaslAuthenticate or ApiVersions. Requests keep being served while a
 * re-authentication is under way.
 */
export class SaslSession {
  private current: SaslState = SaslState.HANDSHAKE;
  private exchange: SaslExchange | null = null;
  private rawTokens = false;
  private authenticatedAs: string | null = null;
  private mechanism: string | null = null;
  private reauthenticating = false;
  private expiresAtMs: number | null = null;

  /**
   * @param reauthMs session lifetime in ms (`connections.max.reauth.ms`); 0: sessions never end
   * @param now clock in ms (tests)
   */
  constructor(
    private readonly mechanisms: readonly SaslMechanism[],
    private readonly credentials: CredentialStore,
    private readonly reauthMs = 0,
    private readonly now: () => number = Date.now,
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

  /** Authenticated: the first authentication completed (and, during a re-authentication, the previous session stands). */
  get authenticated(): boolean {
    return this.current === SaslState.COMPLETE || (this.reauthenticating && this.current === SaslState.AUTHENTICATE);
  }

  /** The session's lifetime ended (with `reauthMs` > 0) and no re-authentication completed since. */
  get expired(): boolean {
    return this.expiresAtMs !== null && this.now() >= this.expiresAtMs;
  }

  /** Completed authentications on this connection, the first one included. */
  authentications = 0;

  /** The mechanisms the broker offers, as SaslHandshake lists them. */
  get offered(): readonly SaslMechanism[] {
    return this.mechanisms;
  }

  /** SaslHandshake: picks the mechanism. Returns the Kafka error code. */
  handshake(mechanism: string, version: number): number {
    const reauthenticate = this.current === SaslState.COMPLETE && this.reauthMs > 0 && version >= 1;
    if (this.current !== SaslState.HANDSHAKE && !reauthenticate) return KafkaError.ILLEGAL_SASL_STATE;
    if (!(this.mechanisms as readonly string[]).includes(mechanism)) return KafkaError.UNSUPPORTED_SASL_MECHANISM;
    // KIP-368: a re-authentication keeps the mechanism of the first authentication.
    if (reauthenticate && mechanism !== this.mechanism) return KafkaError.UNSUPPORTED_SASL_MECHANISM;
    this.reauthenticating = reauthenticate;
    this.mechanism = mechanism;
    this.exchange =
      mechanism === 'PLAIN' ? new PlainExchange(this.credentials) : new ScramExchange(this.credentials, mechanism === 'SCRAM-SHA-512' ? 'sha512' : 'sha256');
    this.rawTokens = version === 0;
    this.current = SaslState.AUTHENTICATE;
    return KafkaError.NONE;
  }

  /** One client token (from SaslAuthenticate or a bare frame). */
  authenticate(token: Buffer): SaslAuthenticateOutcome {
    if (this.current !== SaslState.AUTHENTICATE || this.exchange === null) {
      const errorMessage = `unexpected SASL token in state ${this.current}`;
      return this.failed(KafkaError.ILLEGAL_SASL_STATE, errorMessage);
    }
    const step = this.exchange.step(token);
    if (step.kind === 'failed') return this.failed(KafkaError.SASL_AUTHENTICATION_FAILED, step.reason);
    if (step.kind === 'continue') return { errorCode: KafkaError.NONE, errorMessage: null, authBytes: step.response, sessionLifetimeMs: 0 };
    if (this.reauthenticating && step.principal !== this.authenticatedAs) {
      return this.failed(
        KafkaError.SASL_AUTHENTICATION_FAILED,
        `re-authentication as "${step.principal}" on a connection authenticated as "${this.authenticatedAs}": a connection keeps its principal`,
      );
    }
    this.current = SaslState.COMPLETE;
    this.reauthenticating = false;
    this.authenticatedAs = step.principal;
    this.authentications += 1;
    this.expiresAtMs = this.reauthMs > 0 ? this.now() + this.reauthMs : null;
    return { errorCode: KafkaError.NONE, errorMessage: null, authBytes: step.response, sessionLifetimeMs: this.reauthMs };
  }

  private failed(errorCode: number, errorMessage: string): SaslAuthenticateOutcome {
    this.current = SaslState.FAILED;
    this.reauthenticating = false;
    return { errorCode, errorMessage, authBytes: Buffer.alloc(0), sessionLifetimeMs: 0 };
  }
}
