import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TlsError } from '../../src/errors.js';
import { tlsOptionsFor } from '../../src/sources/tls-options.js';
import { makeTestCertificates, type TestCertificates } from '../support/certs.js';
import { mailboxConfig } from '../fixtures/mailbox-config.js';

/**
 * A mailbox's `ca` is added to Node's roots in one secure context built from the shared root store,
 * not by handing Node every root again as PEM (25-30 ms per connection). Whether the server
 * certificate is then accepted or refused is proved against Dovecot in fetch-protocols.test.ts.
 */
let dir: string;
let certs: TestCertificates;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mailpoll-tls-'));
  certs = await makeTestCertificates(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tlsOf = (caFile: string | undefined) => ({ mode: 'implicit' as const, caFile, insecureSkipVerify: false, allowPlaintext: false });

describe('tlsOptionsFor', () => {
  it('adds a ca file to the roots as one secure context, verification on, TLS 1.2 at least', async () => {
    const options = await tlsOptionsFor(mailboxConfig({ host: 'mail.example.com', tls: tlsOf(certs.caFile) }));
    expect(options.secureContext).toBeDefined();
    expect(options.ca).toBeUndefined();
    expect(options.rejectUnauthorized).toBe(true);
    expect(options.minVersion).toBe('TLSv1.2');
    expect(options.servername).toBe('mail.example.com');
  });

  it('without a ca file leaves Node its default roots', async () => {
    const options = await tlsOptionsFor(mailboxConfig({ host: '127.0.0.1', tls: tlsOf(undefined) }));
    expect(options.secureContext).toBeUndefined();
    expect(options.ca).toBeUndefined();
    // SNI is for names, not addresses (RFC 6066 section 3).
    expect(options.servername).toBeUndefined();
  });

  it('a ca file that cannot be read is a TLS error naming it', async () => {
    const missing = join(dir, 'missing.pem');
    await expect(tlsOptionsFor(mailboxConfig({ tls: tlsOf(missing) }))).rejects.toBeInstanceOf(TlsError);
    await expect(tlsOptionsFor(mailboxConfig({ tls: tlsOf(missing) }))).rejects.toThrow(missing);
  });
});
