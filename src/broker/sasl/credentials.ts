/**
 * SASL users and what the broker keeps of them.
 *
 * Credentials file (JSON, at most {@link CREDENTIALS_FILE_BYTES_MAX}):
 *
 *   { "users": [
 *       { "username": "alice", "password": "..." },
 *       { "username": "bob", "scramSha256": { "salt": "<base64>", "iterations": 4096,
 *                                             "storedKey": "<base64>", "serverKey": "<base64>" } } ] }
 *
 * A user with a password can log in with PLAIN and SCRAM-SHA-256 (its SCRAM
 * keys are derived once, at load, with a random salt). A user given only as
 * SCRAM keys (RFC 5802 §3: StoredKey = H(HMAC(SaltedPassword, "Client Key")),
 * ServerKey = HMAC(SaltedPassword, "Server Key")) can log in with SCRAM only,
 * and the file then holds no password.
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

/** One user the broker accepts. */
export interface SaslUser {
  username: string;
  /** Null when the user was given only as SCRAM keys. */
  password: string | null;
  scramSha256: ScramCredential;
}

/** Largest credentials file read, in bytes. */
export const CREDENTIALS_FILE_BYTES_MAX = 1024 * 1024;
/** RFC 7677 §4: at least 4096 iterations for SCRAM-SHA-256. */
export const SCRAM_ITERATIONS_DEFAULT = 4096;
const SCRAM_ITERATIONS_MAX = 1_000_000;

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const userSchema = z.union([
  z.strictObject({ username: z.string().min(1).max(1024), password: z.string().min(1).max(1024) }),
  z.strictObject({
    username: z.string().min(1).max(1024),
    scramSha256: z.strictObject({
      salt: base64.min(4),
      iterations: z.number().int().min(SCRAM_ITERATIONS_DEFAULT).max(SCRAM_ITERATIONS_MAX),
      storedKey: base64.length(44),
      serverKey: base64.length(44),
    }),
  }),
]);
const fileSchema = z.strictObject({ users: z.array(userSchema).min(1).max(10_000) });

/** SCRAM-SHA-256 keys for a password (RFC 5802 §3). */
export function scramSha256Credential(password: string, salt: Buffer, iterations: number): ScramCredential {
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    salt,
    iterations,
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
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
        const keys = user.scramSha256;
        return {
          username: user.username,
          password: null,
          scramSha256: {
            salt: Buffer.from(keys.salt, 'base64'),
            iterations: keys.iterations,
            storedKey: Buffer.from(keys.storedKey, 'base64'),
            serverKey: Buffer.from(keys.serverKey, 'base64'),
          },
        };
      }),
    );
  }
}
