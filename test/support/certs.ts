/**
 * Test certificates made with the `openssl` command line (no npm packages).
 *
 * `makeTestCertificates(dir)` writes a throw-away CA and a server certificate signed by it:
 *   - EC P-256 keys, valid from now for `days` days (default 3);
 *   - server SAN: IP:127.0.0.2, IP:127.0.0.1, DNS:localhost (or `opts.san`), EKU serverAuth.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile, mkdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';

export interface TestCertificates {
  caFile: string;     // PEM of the CA certificate (give it to clients as `ca`)
  caKeyFile: string;
  certFile: string;   // PEM of the server certificate (leaf only)
  keyFile: string;    // PEM of the server private key (unencrypted)
}

export interface CertOptions {
  days?: number;
  commonName?: string;
  /** SAN entries replacing the default list, in openssl syntax (e.g. 'DNS:example.test'). */
  san?: string[];
}

const DEFAULT_SAN = ['IP:127.0.0.2', 'IP:127.0.0.1', 'DNS:localhost'];

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) {
        reject(new Error(`openssl ${args.join(' ')} failed: ${err.message}\n${String(stderr)}`));
      } else {
        resolve();
      }
    });
  });
}

/** Writes ca.crt, ca.key, server.crt, server.key into `dir` (created if missing). */
export async function makeTestCertificates(dir: string, opts: CertOptions = {}): Promise<TestCertificates> {
  await mkdir(dir, { recursive: true });
  const days = String(opts.days ?? 3);
  const tag = randomBytes(4).toString('hex');
  const san = (opts.san ?? DEFAULT_SAN).join(',');
  const caFile = join(dir, 'ca.crt');
  const caKeyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  const csrFile = join(dir, 'server.csr');
  const extFile = join(dir, 'server.ext');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

  await openssl([
    'req', '-x509', ...ec, '-keyout', caKeyFile, '-out', caFile, '-days', days,
    '-subj', `/O=mailpoll tests/CN=mailpoll test CA ${tag}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
  ], dir);
  await openssl([
    'req', '-new', ...ec, '-keyout', keyFile, '-out', csrFile,
    '-subj', `/O=mailpoll tests/CN=${opts.commonName ?? 'localhost'}`,
  ], dir);
  await writeFile(extFile, [
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage = serverAuth',
    `subjectAltName = ${san}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid,issuer',
    '',
  ].join('\n'));
  await openssl([
    'x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', caKeyFile,
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', days,
    '-extfile', extFile, '-out', certFile,
  ], dir);
  await chmod(keyFile, 0o600);
  await chmod(caKeyFile, 0o600);
  return { caFile, caKeyFile, certFile, keyFile };
}
