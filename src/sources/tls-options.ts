import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { createSecureContext, rootCertificates, type ConnectionOptions, type SecureContext } from 'node:tls';
import type { MailboxConfig } from '../config/types.js';
import { ConnectionError, MailpollError, TimeoutError, TlsError } from '../errors.js';

/**
 * TLS options for a mailbox. Certificates are always verified against Node's bundled roots plus
 * the mailbox's `ca` file; `insecureSkipVerify` is the only way out and the caller logs it.
 * A configured `ca` adds to the roots instead of replacing them, so a server that later moves to
 * a public CA still verifies.
 */
export async function tlsOptionsFor(mailbox: MailboxConfig): Promise<ConnectionOptions> {
  const options: ConnectionOptions = {
    host: mailbox.host,
    port: mailbox.port,
    rejectUnauthorized: !mailbox.tls.insecureSkipVerify,
    minVersion: MIN_VERSION,
  };
  // SNI is for names only (RFC 6066 section 3); for an IP the certificate's IP SAN is checked.
  if (isIP(mailbox.host) === 0) options.servername = mailbox.host;
  if (mailbox.tls.caFile !== undefined) {
    let extra: string;
    try {
      extra = await readFile(mailbox.tls.caFile, 'utf8');
    } catch (cause) {
      throw new TlsError(`cannot read the CA file ${mailbox.tls.caFile}`, { mailbox: mailbox.name, cause });
    }
    const context = rootsPlus(extra);
    if (context !== undefined) options.secureContext = context;
    else options.ca = [...rootCertificates, extra];
  }
  return options;
}

const MIN_VERSION = 'TLSv1.2';

/**
 * Node's default roots plus `pem`, as one secure context. `ca: [...rootCertificates, pem]` names
 * the same roots, but has Node parse all ~140 of them from PEM again for every connection: 25-30 ms
 * before the first byte went out (measured with `npm run bench -- --profile`). A context made
 * without `ca` shares the root store Node built once; adding `pem` gives this context its own copy
 * of it, through the same SecureContext.addCACert that `ca` is fed to. Undefined on a Node without
 * that call, and the caller falls back to `ca`. (The default roots also honour NODE_EXTRA_CA_CERTS.)
 */
function rootsPlus(pem: string): SecureContext | undefined {
  const context = createSecureContext({ minVersion: MIN_VERSION });
  const native = (context as { context?: { addCACert?: (pem: string) => void } }).context;
  if (typeof native?.addCACert !== 'function') return undefined;
  native.addCACert(pem);
  return context;
}

const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_UNSUPPORTED_PROTOCOL',
  'EPROTO',
]);

/**
 * Turns a socket-level failure into a typed error with a message a sysadmin can act on.
 * Already-typed errors pass through unchanged.
 */
export function classifyNetworkError(err: unknown, mailbox: MailboxConfig, what = 'connection'): MailpollError {
  if (err instanceof MailpollError) return err;
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  const message = err instanceof Error ? err.message : String(err);
  const where = `${mailbox.host}:${mailbox.port}`;
  const details = { mailbox: mailbox.name, cause: err };
  if (TLS_CODES.has(code) || /certificate|ssl|tls/i.test(message)) {
    const hint = code.includes('SELF_SIGNED') || code.includes('ISSUER') || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'
      ? ' (set `ca:` to the CA file that signed the server certificate)'
      : '';
    return new TlsError(`TLS to ${where} failed: ${message}${hint}`, details);
  }
  if (code === 'ETIMEDOUT' || /timed? ?out/i.test(message)) {
    return new TimeoutError(`${what} to ${where} timed out`, details);
  }
  if (code === 'ECONNREFUSED') return new ConnectionError(`connection to ${where} refused`, details);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new ConnectionError(`cannot resolve host ${mailbox.host}`, details);
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new ConnectionError(`connection to ${where} was reset`, details);
  }
  return new ConnectionError(`${what} to ${where} failed: ${message}`, details);
}
