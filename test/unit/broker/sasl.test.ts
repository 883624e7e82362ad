import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialStore, scramSha256Credential } from '../../../src/broker/sasl/credentials.js';
import { PlainExchange } from '../../../src/broker/sasl/plain.js';
import { ScramSha256Exchange } from '../../../src/broker/sasl/scram.js';
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
  return new CredentialStore([
    { username: 'user', password: 'pencil', scramSha256: scramSha256Credential('pencil', RFC.salt, 4096) },
  ]);
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
    const store = new CredentialStore([
      { username: 'a,b=c', password: 'p', scramSha256: scramSha256Credential('p', RFC.salt, 4096) },
    ]);
    const exchange = new ScramSha256Exchange(store);
    expect(exchange.step(Buffer.from('n,,n=a=2Cb=3Dc,r=x')).kind).toBe('continue');
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
    expect(session.authenticate(Buffer.from('\0alice\0s3cret'))).toEqual({ errorCode: 0, errorMessage: null, authBytes: Buffer.alloc(0) });
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
    });
    expect([session.state, session.authenticated]).toEqual(['failed', false]);
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

  it('names the file and the problem', async () => {
    const path = join(dir, 'bad.json');
    await writeFile(path, JSON.stringify({ users: [{ username: 'x', scramSha256: { salt: 'AAAA', iterations: 10, storedKey: 'x', serverKey: 'y' } }] }));
    await expect(CredentialStore.fromFile(path)).rejects.toThrow(`SASL credentials file ${path}: users.0`);
    await writeFile(path, '{');
    await expect(CredentialStore.fromFile(path)).rejects.toThrow(`SASL credentials file ${path}: is not JSON`);
    await expect(CredentialStore.fromFile(join(dir, 'missing.json'))).rejects.toThrow(
      `SASL credentials file ${join(dir, 'missing.json')}: cannot be read (ENOENT`,
    );
    await writeFile(path, JSON.stringify({ users: [{ username: 'a', password: 'b' }, { username: 'a', password: 'c' }] }));
    await expect(CredentialStore.fromFile(path)).rejects.toThrow('SASL user "a" is listed twice');
  });
});
