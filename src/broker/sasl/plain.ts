import { createHash, timingSafeEqual } from 'node:crypto';
import type { CredentialStore } from './credentials.js';
import type { SaslExchange, SaslStep } from './mechanism.js';

/**
 * SASL PLAIN (RFC 4616): one message from the client,
 * `[authzid] NUL authcid NUL passwd`, UTF-8. The authorization identity must
 * be empty or the same as the authentication identity (Kafka does the same).
 * Passwords are compared in constant time over their SHA-256 digests, so
 * neither their content nor their length leaks through timing.
 */
export class PlainExchange implements SaslExchange {
  private done = false;

  constructor(private readonly credentials: CredentialStore) {}

  step(message: Buffer): SaslStep {
    if (this.done) return { kind: 'failed', reason: 'PLAIN takes exactly one message' };
    this.done = true;
    const parts = message.toString('utf8').split('\0');
    if (parts.length !== 3) return { kind: 'failed', reason: 'PLAIN message must be authzid NUL authcid NUL passwd' };
    const [authzid, username, password] = parts as [string, string, string];
    if (username === '' || password === '') return { kind: 'failed', reason: 'PLAIN needs a username and a password' };
    if (authzid !== '' && authzid !== username) {
      return { kind: 'failed', reason: 'PLAIN authorization identity must equal the username' };
    }
    const user = this.credentials.get(username);
    const expected = user?.password ?? null;
    // Compare even for unknown users, so the time taken does not tell whether a user exists.
    const matches = timingSafeEqual(digest(password), digest(expected ?? '\0unknown')) && expected !== null;
    if (!matches) return { kind: 'failed', reason: `authentication failed for user "${username}"` };
    return { kind: 'complete', principal: username, response: Buffer.alloc(0) };
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
