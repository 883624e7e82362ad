import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SCRAM_DIGEST_BYTES, SCRAM_ITERATIONS_DEFAULT, type CredentialStore, type ScramCredential, type ScramHash } from './credentials.js';
import type { SaslExchange, SaslStep } from './mechanism.js';

const SERVER_SECRET = randomBytes(32);
const NONCE_BYTES = 24;
const MESSAGE_BYTES_MAX = 4096;

type State =
  | { phase: 'first' }
  | {
      phase: 'final';
      username: string;
      credential: ScramCredential | null;
      clientNonce: string;
      nonce: string;
      gs2Header: string;
      authPrefix: string;
    }
  | { phase: 'done' };

/**
 * Server side of SCRAM-SHA-256 (RFC 5802, with SHA-256 per RFC 7677) and
 * SCRAM-SHA-512 (the same exchange with SHA-512: HMAC-SHA-512, 64-byte
 * keys and proofs), without channel binding:
 *
 *   C: n,,n=<user>,r=<cnonce>                          client-first-message
 *   S: r=<cnonce><snonce>,s=<salt b64>,i=<iterations>  server-first-message
 *   C: c=biws,r=<cnonce><snonce>,p=<proof b64>         client-final-message
 *   S: v=<ServerSignature b64>                         server-final-message
 *
 * AuthMessage = client-first-bare "," server-first "," client-final-without-proof
 * ClientKey   = proof XOR HMAC(StoredKey, AuthMessage);  H(ClientKey) must equal StoredKey
 * ServerSignature = HMAC(ServerKey, AuthMessage)
 *
 * librdkafka (2.0.2, as shipped by Debian) echoes the nonce as
 * <cnonce><cnonce><snonce>: it prefixes the server's whole nonce with its own
 * again (rd_kafka_sasl_scram_build_client_final_message_wo_proof). Apache
 * Kafka accepts any final nonce that ends with the server's
 * (ScramSaslServer: `nonce().endsWith(...)`); this server accepts exactly
 * the RFC form and librdkafka's form, nothing else. The proof is computed
 * over the message as sent, so it still binds the server's random part.
 *
 * An unknown user, and a user without keys for this mechanism's hash (a
 * credentials file may give SCRAM-SHA-256 keys only), is answered with a
 * salt derived from a per-process secret and fails only at the proof, so the
 * exchange does not reveal which users exist (RFC 5802 §9 suggests this).
 */
export class ScramExchange implements SaslExchange {
  private state: State = { phase: 'first' };

  /**
   * @param hash 'sha256' for SCRAM-SHA-256, 'sha512' for SCRAM-SHA-512
   * @param serverNonce the server's part of the nonce; tests pass RFC 7677's fixed one.
   */
  constructor(
    private readonly credentials: CredentialStore,
    private readonly hash: ScramHash,
    private readonly serverNonce: () => string = () => randomBytes(NONCE_BYTES).toString('base64'),
  ) {}

  /** The mechanism's name as SaslHandshake carries it. */
  get mechanism(): string {
    return this.hash === 'sha256' ? 'SCRAM-SHA-256' : 'SCRAM-SHA-512';
  }

  step(message: Buffer): SaslStep {
    if (message.length > MESSAGE_BYTES_MAX) return this.fail(`SCRAM message of ${message.length} bytes is too long`);
    const text = message.toString('utf8');
    const state = this.state;
    if (state.phase === 'first') return this.clientFirst(text);
    if (state.phase === 'final') return this.clientFinal(text, state);
    return this.fail('SCRAM exchange already finished');
  }

  private fail(reason: string): SaslStep {
    this.state = { phase: 'done' };
    return { kind: 'failed', reason };
  }

  private clientFirst(text: string): SaslStep {
    // gs2-header: cbind flag, optional authzid, then the bare message.
    const match = /^([ny]),(a=[^,]*)?,(.*)$/s.exec(text);
    if (match === null) {
      return this.fail(text.startsWith('p=') ? 'SCRAM channel binding is not supported' : 'malformed SCRAM client-first-message');
    }
    const gs2Header = `${match[1]},${match[2] ?? ''},`;
    const bare = match[3] ?? '';
    const attributes = parseAttributes(bare);
    if (attributes === null || bare.startsWith('m=')) return this.fail('malformed SCRAM client-first-message');
    const username = attributes.get('n');
    const clientNonce = attributes.get('r');
    if (username === undefined || clientNonce === undefined || clientNonce === '') {
      return this.fail('SCRAM client-first-message needs n= and r=');
    }
    if (attributes.get('tokenauth') !== undefined) return this.fail('SCRAM delegation tokens are not supported');
    const name = unescapeName(username);
    if (name === null) return this.fail('malformed SCRAM username');
    if (match[2] !== undefined && unescapeName(match[2].slice(2)) !== name) {
      return this.fail('SCRAM authorization identity must equal the username');
    }
    const user = this.credentials.get(name);
    const credential = (this.hash === 'sha256' ? user?.scramSha256 : user?.scramSha512) ?? null;
    // Salted by mechanism too, so an unknown user's fake salts differ per hash as a real user's do.
    const salt = credential?.salt ?? createHmac('sha256', SERVER_SECRET).update(`${this.hash}\0${name}`).digest().subarray(0, 16);
    const iterations = credential?.iterations ?? SCRAM_ITERATIONS_DEFAULT;
    const nonce = clientNonce + this.serverNonce();
    const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${iterations}`;
    this.state = { phase: 'final', username: name, credential, clientNonce, nonce, gs2Header, authPrefix: `${bare},${serverFirst}` };
    return { kind: 'continue', response: Buffer.from(serverFirst, 'utf8') };
  }

  private clientFinal(text: string, state: Extract<State, { phase: 'final' }>): SaslStep {
    const proofAt = text.lastIndexOf(',p=');
    if (proofAt < 0) return this.fail('SCRAM client-final-message has no proof');
    const withoutProof = text.slice(0, proofAt);
    const attributes = parseAttributes(withoutProof);
    if (attributes === null) return this.fail('malformed SCRAM client-final-message');
    if (attributes.get('c') !== Buffer.from(state.gs2Header, 'utf8').toString('base64')) {
      return this.fail('SCRAM channel binding does not match the client-first-message');
    }
    const echoed = attributes.get('r');
    if (echoed !== state.nonce && echoed !== state.clientNonce + state.nonce) return this.fail('SCRAM nonce does not match');
    const proof = Buffer.from(text.slice(proofAt + 3), 'base64');
    const credential = state.credential;
    const failed = `authentication failed for user "${state.username}"`;
    if (credential === null || proof.length !== SCRAM_DIGEST_BYTES[this.hash]) return this.fail(failed);
    const authMessage = `${state.authPrefix},${withoutProof}`;
    const clientSignature = createHmac(this.hash, credential.storedKey).update(authMessage).digest();
    const clientKey = xor(proof, clientSignature);
    const storedKey = createHash(this.hash).update(clientKey).digest();
    if (!timingSafeEqual(storedKey, credential.storedKey)) return this.fail(failed);
    const serverSignature = createHmac(this.hash, credential.serverKey).update(authMessage).digest();
    this.state = { phase: 'done' };
    return {
      kind: 'complete',
      principal: state.username,
      response: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'),
    };
  }
}

/** SCRAM-SHA-256 (RFC 7677). */
export class ScramSha256Exchange extends ScramExchange {
  constructor(credentials: CredentialStore, serverNonce?: () => string) {
    super(credentials, 'sha256', serverNonce);
  }
}

/** SCRAM-SHA-512. */
export class ScramSha512Exchange extends ScramExchange {
  constructor(credentials: CredentialStore, serverNonce?: () => string) {
    super(credentials, 'sha512', serverNonce);
  }
}

/** `a=1,b=2` → Map; null when an attribute is not `name=value`. */
function parseAttributes(text: string): Map<string, string> | null {
  const attributes = new Map<string, string>();
  for (const part of text.split(',')) {
    const equals = part.indexOf('=');
    if (equals < 1) return null;
    attributes.set(part.slice(0, equals), part.slice(equals + 1));
  }
  return attributes;
}

/** saslname: "," is sent as "=2C" and "=" as "=3D"; any other "=" is malformed. */
function unescapeName(name: string): string | null {
  if (/=(?!2C|3D)/.test(name)) return null;
  return name.replaceAll('=2C', ',').replaceAll('=3D', '=');
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i += 1) out[i] = a[i]! ^ b[i]!;
  return out;
}
