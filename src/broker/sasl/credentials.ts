/**
 * SASL users and what the broker keeps of them.
 *
 * Credentials file (JSON, at most {@link CREDENTIALS_FILE_BYTES_MAX}):
 *
 *   { "users": [
 *       { "username": "alice", "password": "..." },
 *       { "username": "bob", "scramSha256": { "salt": "<base64>", "iterations": 4096,
 *                                             "storedKey": "<base64>", "serverKey": "<base64>" },
 *                            "scramSha512": { ...the same four fields, 64-byte keys } } ] }
 *
 * A user with a password can log in with PLAIN, SCRAM-SHA-256 and
 * SCRAM-SHA-512 (its SCRAM keys are derived once, at load, with a random
 * salt per mechanism). A user given only as SCRAM keys (RFC 5802 §3:
 * StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
 * HMAC(SaltedPassword, "Server Key"), H being SHA-256 or SHA-512) can log in
 * with the SCRAM mechanisms it has keys for, and the file then holds no
 * password. Keys are 32 bytes for SHA-256 (44 base64 characters) and 64 for
 * SHA-512 (88).
 *
 * @module
 */

import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { ConcordatError, ErrorCode } from '../../errors.js';
import type { SaslUserOptions } from '../../config/index.js';

/** What the broker keeps to check a SCRAM-SHA-256 login (RFC 5802 §3): never the password itself. */
export interface ScramCredential {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** The hash of a SCRAM mechanism: SCRAM-SHA-256 (RFC 7677) or SCRAM-SHA-512. */
export type ScramHash = 'sha256' | 'sha512';

/** One user the broker accepts. */
export interface SaslUser {
  username: string;
  /** Null when the user was given only as SCRAM keys. */
  password: string | null;
  /** Null when the file gave this user SCRAM-SHA-512 keys only. */
  scramSha256: ScramCredential | null;
  /** Null when the file gave this user SCRAM-SHA-256 keys only. */
  scramSha512: ScramCredential | null;
}

/** Bytes of a digest (and of SaltedPassword, StoredKey, ServerKey) per SCRAM hash. */
export const SCRAM_DIGEST_BYTES: Readonly<Record<ScramHash, number>> = { sha256: 32, sha512: 64 };

/** Largest credentials file read, in bytes. */
export const CREDENTIALS_FILE_BYTES_MAX = 1024 * 1024;
/** RFC 7677 §4: at least 4096 iterations for SCRAM-SHA-256 (Kafka asks the same of SCRAM-SHA-512). */
export const SCRAM_ITERATIONS_DEFAULT = 4096;
const SCRAM_ITERATIONS_MAX = 1_000_000;

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const scramKeysSchema = (keyBase64Length: number) =>
  z.strictObject({
    salt: base64.min(4),
    iterations: z.number().int().min(SCRAM_ITERATIONS_DEFAULT).max(SCRAM_ITERATIONS_MAX),
    storedKey: base64.length(keyBase64Length, `must be ${keyBase64Length} base64 characters`),
    serverKey: base64.length(keyBase64Length, `must be ${keyBase64Length} base64 characters`),
  });
const userSchema = z.union([
  z.strictObject({ username: z.string().min(1).max(1024), password: z.string().min(1).max(1024) }),
  z
    .strictObject({
      username: z.string().min(1).max(1024),
      scramSha256: scramKeysSchema(44).optional(),
      scramSha512: scramKeysSchema(88).optional(),
    })
    .refine((user) => user.scramSha256 !== undefined || user.scramSha512 !== undefined, {
      message: 'give a password, or SCRAM keys (scramSha256 and/or scramSha512)',
    }),
]);
const fileSchema = z.strictObject({ users: z.array(userSchema).min(1).max(10_000) });

/** SCRAM keys for a password (RFC 5802 §3): SaltedPassword = Hi(password, salt, iterations) with HMAC-`hash`. */
export function scramCredential(hash: ScramHash, password: string, salt: Buffer, iterations: number): ScramCredential {
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, SCRAM_DIGEST_BYTES[hash], hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  return {
    salt,
    iterations,
    storedKey: createHash(hash).update(clientKey).digest(),
    serverKey: createHmac(hash, salted).update('Server Key').digest(),
  };
}

/** SCRAM-SHA-256 keys for a password (RFC 5802 §3, RFC 7677). */
export function scramSha256Credential(password: string, salt: Buffer, iterations: number): ScramCredential {
  return scramCredential('sha256', password, salt, iterations);
}

/** SCRAM-SHA-512 keys for a password (RFC 5802 §3 with SHA-512). */
export function scramSha512Credential(password: string, salt: Buffer, iterations: number): ScramCredential {
  return scramCredential('sha512', password, salt, iterations);
}

/** The users a broker accepts, by name. */
export class CredentialStore {
  private readonly users = new Map<string, SaslUser>();

  constructor(users: readonly SaslUser[]) {
    for (const user of users) {
      if (this.users.has(user.username)) {
        throw new ConcordatError(`SASL user "${user.username}" is listed twice`, { code: ErrorCode.CONFIG_INVALID });
      }
      this.users.set(user.username, user);
    }
  }

  /** The user, or undefined when unknown. */
  get(username: string): SaslUser | undefined {
    return this.users.get(username);
  }

  /** Users known. */
  get size(): number {
    return this.users.size;
  }

  /** Users given with passwords (the broker's options): their SCRAM keys are derived now, with a random 16-byte salt and 4096 iterations. */
  static fromPasswords(users: readonly SaslUserOptions[]): CredentialStore {
    return new CredentialStore(
      users.map((user) => ({
        username: user.username,
        password: user.password,
        scramSha256: scramSha256Credential(user.password, randomBytes(16), SCRAM_ITERATIONS_DEFAULT),
        scramSha512: scramSha512Credential(user.password, randomBytes(16), SCRAM_ITERATIONS_DEFAULT),
      })),
    );
  }

  /** @throws ConcordatError CONFIG_INVALID naming the file and what is wrong with it */
  static async fromFile(path: string): Promise<CredentialStore> {
    const invalid = (reason: string, cause?: unknown) =>
      new ConcordatError(`SASL credentials file ${path}: ${reason}`, { code: ErrorCode.CONFIG_INVALID, cause, context: { path } });
    let text: string;
    try {
      const info = await stat(path);
      if (info.size > CREDENTIALS_FILE_BYTES_MAX) throw invalid(`is ${info.size} bytes, limit ${CREDENTIALS_FILE_BYTES_MAX}`);
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (error instanceof ConcordatError) throw error;
      throw invalid(`cannot be read (${(error as Error).message})`, error);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw invalid(`is not JSON (${(error as Error).message})`, error);
    }
    const parsed = fileSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw invalid(`${issue?.path.join('.') || 'root'}: ${issue?.message ?? 'invalid'}`);
    }
    return new CredentialStore(
      parsed.data.users.map((user) => {
        if ('password' in user) return CredentialStore.fromPasswords([user]).get(user.username)!;
        return {
          username: user.username,
          password: null,
          scramSha256: user.scramSha256 === undefined ? null : decodeKeys(user.scramSha256),
          scramSha512: user.scramSha512 === undefined ? null : decodeKeys(user.scramSha512),
        };
      }),
    );
  }
}

function decodeKeys(keys: { salt: string; iterations: number; storedKey: string; serverKey: string }): ScramCredential {
  return {
    salt: Buffer.from(keys.salt, 'base64'),
    iterations: keys.iterations,
    storedKey: Buffer.from(keys.storedKey, 'base64'),
    serverKey: Buffer.from(keys.serverKey, 'base64'),
  };
}
