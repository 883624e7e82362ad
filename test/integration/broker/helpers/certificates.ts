import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk } from './process.js';

/** PEM files of a test CA, a broker certificate for 127.0.0.1 signed by it, and client certificates. */
export interface TestCertificates {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The CA certificate's PEM text (what a client trusts). */
  ca: string;
  /** Per client name: its certificate and key as PEM text. */
  clients: Record<string, { cert: string; key: string }>;
}

/**
 * Makes, with the `openssl` CLI, a CA, a broker certificate (subject
 * `/CN=localhost`, SAN IP 127.0.0.1) and one client certificate per entry
 * of `clients` (name → subject, e.g. `/O=acme/CN=alice`), all signed by
 * the CA and valid for a day, in `dir`.
 */
export async function makeCertificates(dir: string, clients: Record<string, string>): Promise<TestCertificates> {
  const path = (name: string) => join(dir, name);
  await runOk('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=concordat-test-ca',
    '-keyout',
    path('ca.key'),
    '-out',
    path('ca.pem'),
  ]);
  await writeFile(path('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const sign = async (name: string, subject: string, extFile?: string) => {
    await runOk('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', path(`${name}.key`), '-out', path(`${name}.csr`)]);
    await runOk('openssl', [
      'x509',
      '-req',
      '-in',
      path(`${name}.csr`),
      '-CA',
      path('ca.pem'),
      '-CAkey',
      path('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      path(`${name}.pem`),
      ...(extFile === undefined ? [] : ['-extfile', extFile]),
    ]);
  };
  await sign('server', '/CN=localhost', path('server.ext'));
  const made: TestCertificates['clients'] = {};
  for (const [name, subject] of Object.entries(clients)) {
    await sign(`client-${name}`, subject);
    made[name] = { cert: await readFile(path(`client-${name}.pem`), 'utf8'), key: await readFile(path(`client-${name}.key`), 'utf8') };
  }
  return { caFile: path('ca.pem'), certFile: path('server.pem'), keyFile: path('server.key'), ca: await readFile(path('ca.pem'), 'utf8'), clients: made };
}
