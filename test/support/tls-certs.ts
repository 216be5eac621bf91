import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What a TLS-only redis-server or redis-sentinel is started with (PEM file paths). */
export interface RedisTlsFiles {
  /** A server certificate for 127.0.0.1 and localhost, signed by the CA. */
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA that signed it: what BFF_REDIS_CA_FILE names, and what nodes trust in each other. */
  readonly caFile: string;
}

/** PEM files in a temp dir of their own, made by the openssl CLI for one test file. */
export interface TestCertificates extends RedisTlsFiles {
  readonly dir: string;
  /** A CA that signed nothing here: trusting it instead is the wrong-CA case. */
  readonly otherCaFile: string;
  remove(): Promise<void>;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir });
  } catch (err) {
    const { stderr, message } = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed (is openssl installed?): ${stderr || message}`, {
      cause: err,
    });
  }
}

/** A self-signed CA: key and certificate, P-256 for speed. */
async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    dir,
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    '-subj',
    `/CN=coatcheck ${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
}

/** A test CA, a server certificate it signed (SAN 127.0.0.1 and localhost), and an unrelated CA. */
export async function makeTestCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'coatcheck-tls-'));
  try {
    await Promise.all([makeCa(dir, 'ca'), makeCa(dir, 'other-ca')]);
    await openssl(
      dir,
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=127.0.0.1',
    );
    // Redis nodes also dial each other (replication, the cluster bus) with the same certificate.
    await writeFile(
      join(dir, 'server.ext'),
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
    );
    await openssl(
      dir,
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '2',
      '-extfile',
      'server.ext',
    );
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
    otherCaFile: join(dir, 'other-ca.crt'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
