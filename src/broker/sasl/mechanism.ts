/** What an exchange answers to one client message. */
export type SaslStep =
  /** More messages are needed; send `response` and wait for the next one. */
  | { kind: 'continue'; response: Buffer }
  /** Authenticated as `principal`; send `response` (may be empty). */
  | { kind: 'complete'; principal: string; response: Buffer }
  /** Authentication failed; `reason` goes to the client and the log. */
  | { kind: 'failed'; reason: string };

/**
 * One SASL exchange on one connection: the broker feeds it each client
 * message and sends back what it returns.
 */
export interface SaslExchange {
  /** Takes the client's next message; never throws (a malformed message is a `failed` step). */
  step(message: Buffer): SaslStep;
}
