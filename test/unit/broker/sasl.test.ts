import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { CredentialStore, scramSha256Credential, scramSha512Credential } from '../../../src/broker/sasl/credentials.js';
import { PlainExchange } from '../../../src/broker/sasl/plain.js';
import type { SaslExchange } from '../../../src/broker/sasl/mechanism.js';
import { ScramSha256Exchange, ScramSha512Exchange } from '../../../src/broker/sasl/scram.js';
import { SaslSession } from '../../../src/broker/sasl/session.js';

// RFC 7677 §3: the SCRAM-SHA-256 example exchange, user "user", password "pencil".
const RFC = {
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

function rfcStore(): CredentialStore {
  return new CredentialStore([{ username: 'user', password: 'pencil', scramSha256: scramSha256Credential('pencil', RFC.salt, 4096), scramSha512: null }]);
}

describe('SCRAM-SHA-256', () => {
  it('reproduces the RFC 7677 example exchange byte for byte', () => {
    const exchange = new ScramSha256Exchange(rfcStore(), () => RFC.serverNonce);
    const first = exchange.step(Buffer.from(RFC.clientFirst));
    expect(first).toEqual({ kind: 'continue', response: Buffer.from(RFC.serverFirst) });
    const final = exchange.step(Buffer.from(RFC.clientFinal));
    expect(final).toEqual({ kind: 'complete', principal: 'user', response: Buffer.from(RFC.serverFinal) });
  });

  it('rejects a wrong proof, a wrong nonce and an unknown user with the same message shape', () => {
    const wrongProof = new ScramSha256Exchange(rfcStore(), () => RFC.serverNonce);
    wrongProof.step(Buffer.from(RFC.clientFirst));
    expect(wrongProof.step(Buffer.from(RFC.clientFinal.replace('p=dH', 'p=eH')))).toEqual({
      kind: 'failed',
      reason: 'authentication failed for user "user"',
    });

    const wrongNonce = new ScramSha256Exchange(rfcStore(), () => RFC.serverNonce);
    wrongNonce.step(Buffer.from(RFC.clientFirst));
    expect(wrongNonce.step(Buffer.from(RFC.clientFinal.replace('k0,p=', 'k1,p=')))).toEqual({
      kind: 'failed',
      reason: 'SCRAM nonce does not match',
    });

    const unknown = new ScramSha256Exchange(rfcStore(), () => RFC.serverNonce);
    const first = unknown.step(Buffer.from('n,,n=mallory,r=abc'));
    expect(first.kind).toBe('continue');
    const serverFirst = (first as { response: Buffer }).response.toString();
    expect(serverFirst).toMatch(/^r=abc%hvYDpWUa2RaTCAfuxFIlj\)hNlF\$k0,s=[A-Za-z0-9+/]{22}==,i=4096$/);
    expect(unknown.step(Buffer.from(`c=biws,r=abc${RFC.serverNonce},p=${Buffer.alloc(32).toString('base64')}`))).toEqual({
      kind: 'failed',
      reason: 'authentication failed for user "mallory"',
    });
  });

  it("accepts librdkafka's final nonce, its own nonce prefixed once more, and nothing longer", async () => {
    const { createHash, createHmac, pbkdf2Sync } = await import('node:crypto');
    const finalFor = (echoed: string) => {
      const exchange = new ScramSha256Exchange(rfcStore(), () => RFC.serverNonce);
      exchange.step(Buffer.from(RFC.clientFirst));
      const withoutProof = `c=biws,r=${echoed}`;
      const authMessage = `n=user,r=rOprNGfwEbeRWgbNEkqO,${RFC.serverFirst},${withoutProof}`;
      const salted = pbkdf2Sync('pencil', RFC.salt, 4096, 32, 'sha256');
      const clientKey = createHmac('sha256', salted).update('Client Key').digest();
      const signature = createHmac('sha256', createHash('sha256').update(clientKey).digest()).update(authMessage).digest();
      const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!));
      return exchange.step(Buffer.from(`${withoutProof},p=${proof.toString('base64')}`)).kind;
    };
    const nonce = `rOprNGfwEbeRWgbNEkqO${RFC.serverNonce}`;
    expect(finalFor(nonce)).toBe('complete');
    expect(finalFor(`rOprNGfwEbeRWgbNEkqO${nonce}`)).toBe('complete');
    expect(finalFor(`xx${nonce}`)).toBe('failed');
    expect(finalFor(`rOprNGfwEbeRWgbNEkqOrOprNGfwEbeRWgbNEkqO${nonce}`)).toBe('failed');
  });

  it('refuses channel binding, tokens and malformed messages', () => {
    const cases: [string, string][] = [
      ['p=tls-unique,,n=user,r=x', 'SCRAM channel binding is not supported'],
      ['n,,n=user,r=x,tokenauth=true', 'SCRAM delegation tokens are not supported'],
      ['n,,r=x', 'SCRAM client-first-message needs n= and r='],
      ['garbage', 'malformed SCRAM client-first-message'],
      ['n,,n=us=er,r=x', 'malformed SCRAM username'],
    ];
    for (const [message, reason] of cases) {
      expect(new ScramSha256Exchange(rfcStore()).step(Buffer.from(message))).toEqual({ kind: 'failed', reason });
    }
  });

  it('unescapes =2C and =3D in usernames', () => {
    const store = new CredentialStore([{ username: 'a,b=c', password: 'p', scramSha256: scramSha256Credential('p', RFC.salt, 4096), scramSha512: null }]);
    const exchange = new ScramSha256Exchange(store);
    expect(exchange.step(Buffer.from('n,,n=a=2Cb=3Dc,r=x')).kind).toBe('continue');
  });
});

/**
 * The client side of SCRAM (RFC 5802 §3), written here from the RFC so the
 * server is checked against an independent computation: runs the exchange
 * and verifies the server's signature. Returns the server's last step.
 */
function scramLogin(exchange: SaslExchange, hash: 'sha256' | 'sha512', username: string, password: string) {
  const bytes = hash === 'sha256' ? 32 : 64;
  const clientFirstBare = `n=${username},r=clientnonce123`;
  const first = exchange.step(Buffer.from(`n,,${clientFirstBare}`));
  if (first.kind !== 'continue') return { last: first, serverVerified: false };
  const serverFirst = first.response.toString();
  const fields = new Map(serverFirst.split(',').map((part) => [part.slice(0, 1), part.slice(2)] as [string, string]));
  const salted = pbkdf2Sync(password, Buffer.from(fields.get('s')!, 'base64'), Number(fields.get('i')), bytes, hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  const withoutProof = `c=biws,r=${fields.get('r')}`;
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  const signature = createHmac(hash, createHash(hash).update(clientKey).digest()).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!));
  const last = exchange.step(Buffer.from(`${withoutProof},p=${proof.toString('base64')}`));
  const expected = `v=${createHmac(hash, createHmac(hash, salted).update('Server Key').digest()).update(authMessage).digest('base64')}`;
  return { last, serverVerified: last.kind === 'complete' && last.response.toString() === expected };
}

describe('SCRAM-SHA-512', () => {
  const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
  const store = new CredentialStore([
    {
      username: 'both',
      password: 'pencil',
      scramSha256: scramSha256Credential('pencil', salt, 4096),
      scramSha512: scramSha512Credential('pencil', salt, 4096),
    },
    { username: 'only256', password: null, scramSha256: scramSha256Credential('pencil', salt, 4096), scramSha512: null },
  ]);

  it('authenticates with SHA-512 keys (64-byte proof) and signs with the server key', () => {
    const { last, serverVerified } = scramLogin(new ScramSha512Exchange(store), 'sha512', 'both', 'pencil');
    expect(last).toMatchObject({ kind: 'complete', principal: 'both' });
    expect(serverVerified).toBe(true);
    expect(scramLogin(new ScramSha256Exchange(store), 'sha256', 'both', 'pencil').serverVerified).toBe(true);
  });

  it('derives SHA-512 keys for users given by password', () => {
    const passwords = CredentialStore.fromPasswords([{ username: 'alice', password: 's3cret' }]);
    expect(passwords.get('alice')?.scramSha512?.storedKey.length).toBe(64);
    expect(scramLogin(new ScramSha512Exchange(passwords), 'sha512', 'alice', 's3cret').serverVerified).toBe(true);
  });

  it('refuses a wrong password, a SHA-256 proof, and a user with SHA-256 keys only, at the proof', () => {
    const failed = (user: string) => ({ kind: 'failed', reason: `authentication failed for user "${user}"` });
    expect(scramLogin(new ScramSha512Exchange(store), 'sha512', 'both', 'pen').last).toEqual(failed('both'));
    expect(scramLogin(new ScramSha512Exchange(store), 'sha256', 'both', 'pencil').last).toEqual(failed('both'));
    const only256 = scramLogin(new ScramSha512Exchange(store), 'sha512', 'only256', 'pencil');
    expect(only256.last).toEqual(failed('only256'));
    expect(scramLogin(new ScramSha256Exchange(store), 'sha256', 'only256', 'pencil').serverVerified).toBe(true);
  });

  it('is offered by a session only when configured', () => {
    const passwords = CredentialStore.fromPasswords([{ username: 'alice', password: 's3cret' }]);
    expect(new SaslSession(['SCRAM-SHA-256', 'PLAIN'], passwords).handshake('SCRAM-SHA-512', 1)).toBe(33);
    const session = new SaslSession(['SCRAM-SHA-512'], passwords);
    expect(session.handshake('SCRAM-SHA-512', 1)).toBe(0);
    const first = session.authenticate(Buffer.from('n,,n=alice,r=abc'));
    expect(first.errorCode).toBe(0);
    expect(first.authBytes.toString()).toMatch(/^r=abc[A-Za-z0-9+/=]+,s=[A-Za-z0-9+/]{22}==,i=4096$/);
  });
});

describe('PLAIN', () => {
  const store = CredentialStore.fromPasswords([{ username: 'alice', password: 's3cret' }]);
  const plain = (message: string) => new PlainExchange(store).step(Buffer.from(message));

  it('accepts the right password with an empty or equal authzid', () => {
    expect(plain('\0alice\0s3cret')).toEqual({ kind: 'complete', principal: 'alice', response: Buffer.alloc(0) });
    expect(plain('alice\0alice\0s3cret')).toEqual({ kind: 'complete', principal: 'alice', response: Buffer.alloc(0) });
  });

  it('rejects wrong passwords, unknown users and other identities', () => {
    expect(plain('\0alice\0wrong')).toEqual({ kind: 'failed', reason: 'authentication failed for user "alice"' });
    expect(plain('\0bob\0s3cret')).toEqual({ kind: 'failed', reason: 'authentication failed for user "bob"' });
    expect(plain('bob\0alice\0s3cret')).toEqual({
      kind: 'failed',
      reason: 'PLAIN authorization identity must equal the username',
    });
    expect(plain('alice s3cret')).toEqual({ kind: 'failed', reason: 'PLAIN message must be authzid NUL authcid NUL passwd' });
  });
});

describe('SASL session', () => {
  const store = CredentialStore.fromPasswords([{ username: 'alice', password: 's3cret' }]);

  it('walks handshake → authenticate → complete', () => {
    const session = new SaslSession(['PLAIN'], store);
    expect(session.handshake('SCRAM-SHA-256', 1)).toBe(33);
    expect(session.handshake('PLAIN', 1)).toBe(0);
    expect(session.raw).toBe(false);
    expect(session.handshake('PLAIN', 1)).toBe(34);
    expect(session.authenticate(Buffer.from('\0alice\0s3cret'))).toEqual({
      errorCode: 0,
      errorMessage: null,
      authBytes: Buffer.alloc(0),
      sessionLifetimeMs: 0,
    });
    expect([session.authenticated, session.principal]).toEqual([true, 'alice']);
    expect(session.authenticate(Buffer.from('x')).errorCode).toBe(34);
  });

  it('switches to bare tokens after handshake v0 and fails closed', () => {
    const session = new SaslSession(['PLAIN'], store);
    expect(session.handshake('PLAIN', 0)).toBe(0);
    expect(session.raw).toBe(true);
    expect(session.authenticate(Buffer.from('\0alice\0nope'))).toEqual({
      errorCode: 58,
      errorMessage: 'authentication failed for user "alice"',
      authBytes: Buffer.alloc(0),
      sessionLifetimeMs: 0,
    });
    expect([session.state, session.authenticated]).toEqual(['failed', false]);
  });

  it('re-authentication (KIP-368): a session lifetime, a handshake again with the same mechanism and principal', () => {
    const two = CredentialStore.fromPasswords([
      { username: 'alice', password: 's3cret' },
      { username: 'bob', password: 'b0b' },
    ]);
    let now = 1000;
    const session = new SaslSession(['PLAIN', 'SCRAM-SHA-256'], two, 5000, () => now);
    expect(session.handshake('PLAIN', 1)).toBe(0);
    expect(session.authenticate(Buffer.from('\0alice\0s3cret')).sessionLifetimeMs).toBe(5000);
    now = 5999;
    expect([session.authenticated, session.expired]).toEqual([true, false]);
    now = 6000;
    expect(session.expired).toBe(true);
    // Again: v0 (bare tokens) cannot re-authenticate, another mechanism is refused, the same one starts over.
    expect(session.handshake('PLAIN', 0)).toBe(34);
    expect(session.handshake('SCRAM-SHA-256', 1)).toBe(33);
    expect(session.handshake('PLAIN', 1)).toBe(0);
    expect(session.authenticated).toBe(true);
    expect(session.authenticate(Buffer.from('\0alice\0s3cret')).sessionLifetimeMs).toBe(5000);
    expect([session.expired, session.authentications]).toEqual([false, 2]);
    // Another principal is refused, and the session fails.
    expect(session.handshake('PLAIN', 1)).toBe(0);
    expect(session.authenticate(Buffer.from('\0bob\0b0b'))).toMatchObject({
      errorCode: 58,
      errorMessage: 're-authentication as "bob" on a connection authenticated as "alice": a connection keeps its principal',
    });
    expect(session.authenticated).toBe(false);
    // Without a lifetime, a second handshake stays illegal and the session never expires.
    const forever = new SaslSession(['PLAIN'], two);
    forever.handshake('PLAIN', 1);
    expect(forever.authenticate(Buffer.from('\0alice\0s3cret')).sessionLifetimeMs).toBe(0);
    expect([forever.handshake('PLAIN', 1), forever.expired]).toEqual([34, false]);
  });
});

describe('credentials file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concordat-sasl-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads passwords and SCRAM keys', async () => {
    const keys = scramSha256Credential('pencil', RFC.salt, 4096);
    const path = join(dir, 'ok.json');
    await writeFile(
      path,
      JSON.stringify({
        users: [
          { username: 'alice', password: 's3cret' },
          {
            username: 'user',
            scramSha256: {
              salt: RFC.salt.toString('base64'),
              iterations: 4096,
              storedKey: keys.storedKey.toString('base64'),
              serverKey: keys.serverKey.toString('base64'),
            },
          },
        ],
      }),
    );
    const store = await CredentialStore.fromFile(path);
    expect(store.size).toBe(2);
    expect(store.get('user')?.password).toBeNull();
    const exchange = new ScramSha256Exchange(store, () => RFC.serverNonce);
    exchange.step(Buffer.from(RFC.clientFirst));
    expect(exchange.step(Buffer.from(RFC.clientFinal)).kind).toBe('complete');
  });

  it('loads SCRAM-SHA-512 keys, alone or beside SCRAM-SHA-256 keys', async () => {
    const keys = scramSha512Credential('pencil', RFC.salt, 4096);
    const encoded = {
      salt: RFC.salt.toString('base64'),
      iterations: 4096,
      storedKey: keys.storedKey.toString('base64'),
      serverKey: keys.serverKey.toString('base64'),
    };
    const path = join(dir, 'sha512.json');
    await writeFile(path, JSON.stringify({ users: [{ username: 'user', scramSha512: encoded }] }));
    const store = await CredentialStore.fromFile(path);
    expect([store.get('user')?.scramSha256, store.get('user')?.password]).toEqual([null, null]);
    expect(scramLogin(new ScramSha512Exchange(store), 'sha512', 'user', 'pencil').serverVerified).toBe(true);
    expect(scramLogin(new ScramSha256Exchange(store), 'sha256', 'user', 'pencil').last.kind).toBe('failed');

    await writeFile(path, JSON.stringify({ users: [{ username: 'user', scramSha512: { ...encoded, storedKey: encoded.storedKey.slice(0, 44) } }] }));
    await expect(CredentialStore.fromFile(path)).rejects.toThrow(`SASL credentials file ${path}: users.0`);
    await writeFile(path, JSON.stringify({ users: [{ username: 'user' }] }));
    await expect(CredentialStore.fromFile(path)).rejects.toThrow(`SASL credentials file ${path}: users.0`);
  });

  it('names the file and the problem', async () => {
    const path = join(dir, 'bad.json');
    await writeFile(path, JSON.stringify({ users: [{ username: 'x', scramSha256: { salt: 'AAAA', iterations: 10, storedKey: 'x', serverKey: 'y' } }] }));
    await expect(CredentialStore.fromFile(path)).rejects.toThrow(`SASL credentials file ${path}: users.0`);
    await writeFile(path, '{');
    await expect(CredentialStore.fromFile(path)).rejects.toThrow(`SASL credentials file ${path}: is not JSON`);
    await expect(CredentialStore.fromFile(join(dir, 'missing.json'))).rejects.toThrow(
      `SASL credentials file ${join(dir, 'missing.json')}: cannot be read (ENOENT`,
    );
    await writeFile(
      path,
      JSON.stringify({
        users: [
          { username: 'a', password: 'b' },
          { username: 'a', password: 'c' },
        ],
      }),
    );
    await expect(CredentialStore.fromFile(path)).rejects.toThrow('SASL user "a" is listed twice');
  });
});
