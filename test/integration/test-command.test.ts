import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer, type MaildirEntry } from '../support/dovecot.js';
import { runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser, VARIANTS } from '../support/scenario.js';

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
});

/** The fields of `mailpoll test --json` that these tests read. */
interface ProbeJson {
  mailbox: string;
  ok: boolean;
  tls: {
    protocol: string;
    cipher: string;
    verified: boolean;
    certificate: { subject: string; issuer: string; daysUntilExpiry: number } | null;
  } | null;
  loggedIn: boolean;
  counts: { protocol: 'imap'; messages: number; unseen: number; uidValidity: string; uidNext: number }
    | { protocol: 'pop3'; messages: number; bytes: number } | null;
  capabilities: string[];
  failedAt: string | null;
  error: { code: string; message: string } | null;
}

/** What a mailbox holds, independent of new/ vs cur/ (Dovecot may move a file on access). */
function state(entries: MaildirEntry[]): { name: string; flags: string }[] {
  return entries.map((e) => ({ name: e.name, flags: e.flags }));
}

/** The text block of one mailbox in `mailpoll test` output. */
function block(stdout: string, mailbox: string): string {
  const found = stdout.split('\n\n').find((b) => b.startsWith(`${mailbox}  (`));
  if (found === undefined) throw new Error(`no block for ${mailbox} in:\n${stdout}`);
  return found;
}

describe.each(VARIANTS)('mailpoll test, $protocol with tls: $tls', (variant) => {
  it('shows TLS version, cipher, certificate and expiry, the counts and the capabilities, exits 0 and changes nothing', async () => {
    const user = await newUser(server);
    const unseen = [plainMessage({ subject: 'one' }), plainMessage({ subject: 'two' })];
    const seen = plainMessage({ subject: 'three, already read' });
    for (const raw of unseen) await server.deliver(user.user, raw);
    await server.deliver(user.user, seen, { flags: 'S' });
    const before = await server.listMaildir(user.user);
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const entry = mailboxEntry(server, variant, user);
    const config = writeConfig(dir, { database: db, mailboxes: [entry] });

    const text = await runMailpoll(['test', '--config', config]);
    expect(text.code, text.stdout + text.stderr).toBe(0);
    const out = block(text.stdout, String(entry.name));
    expect(out).toMatch(/\n {2}tls +TLSv1\.[23], [A-Z0-9_-]+, certificate verified\n/);
    expect(out).toMatch(/\n {2}subject +O=mailpoll tests, CN=localhost\n/);
    expect(out).toMatch(/\n {2}issuer +O=mailpoll tests, CN=mailpoll test CA [0-9a-f]+\n/);
    // The test certificates are made for 3 days, a moment before this test.
    expect(out).toMatch(/\n {2}expires +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in [23] day\(s\)\)\n/);
    expect(out).toMatch(/\n {2}login +ok\n/);
    if (variant.protocol === 'imap') {
      expect(out).toMatch(/\n {2}folder +INBOX, opened read-only\n/);
      expect(out).toMatch(/\n {2}messages +3 \(2 unseen\), UIDVALIDITY \d+, UIDNEXT 4\n/);
      expect(out).toMatch(/\n {2}capabilities +.*\bIMAP4rev1\b/);
    } else {
      const bytes = [...unseen, seen].reduce((n, raw) => n + raw.length, 0);
      expect(out).toMatch(new RegExp(`\\n {2}messages +3, ${bytes} bytes\\n`));
      expect(out).toMatch(/\n {2}capabilities +.*\bUIDL\b/);
    }
    expect(out).toMatch(/\n {2}result +ok \(/);
    expect(text.stdout).toMatch(/all 1 mailbox\(es\) ok/);

    const json = await runMailpoll(['test', '--config', config, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const [result, ...rest] = JSON.parse(json.stdout) as ProbeJson[];
    expect(rest).toEqual([]);
    expect(result).toMatchObject({ mailbox: entry.name, ok: true, loggedIn: true, failedAt: null, error: null });
    expect(result?.tls?.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(result?.tls?.verified).toBe(true);
    expect(result?.tls?.certificate?.daysUntilExpiry).toBeGreaterThanOrEqual(2);
    if (variant.protocol === 'imap') {
      expect(result?.counts).toMatchObject({ protocol: 'imap', messages: 3, unseen: 2, uidNext: 4 });
      expect(result?.capabilities).toContain('IMAP4rev1');
    } else {
      expect(result?.counts).toEqual({ protocol: 'pop3', messages: 3, bytes: [...unseen, seen].reduce((n, raw) => n + raw.length, 0) });
      expect(result?.capabilities).toContain('UIDL');
    }

    // Nothing changed on the server: the same messages with the same flags (no \Seen added).
    const after = await server.listMaildir(user.user);
    expect(state(after)).toEqual(state(before));
    expect(after.filter((e) => e.flags.includes('S'))).toHaveLength(1);
    // ... and nothing in the database: it is not even created.
    expect(existsSync(db)).toBe(false);
    for (const run of [text, json]) expect(run.stdout + run.stderr).not.toContain(user.password);
  });
});

describe('mailpoll test failures', () => {
  it('a wrong password fails that mailbox at login (AUTH) after showing TLS, the others still run, exit 1, no password printed', async () => {
    const good = await newUser(server);
    const bad = await newUser(server);
    await server.deliver(good.user, plainMessage());
    const wrong = 'Wrong-Password-123';
    const dir = tempDir();
    const config = writeConfig(dir, {
      database: join(dir, 'mailpoll.db'),
      mailboxes: [
        ...VARIANTS.map((v) => ({ ...mailboxEntry(server, v, bad), name: `bad-${v.protocol}-${v.tls}`, password: wrong })),
        { ...mailboxEntry(server, VARIANTS[1]!, good), name: 'good' },
      ],
    });
    const badNames = VARIANTS.map((v) => `bad-${v.protocol}-${v.tls}`);

    const run = await runMailpoll(['test', '--config', config]);
    expect(run.code, run.stdout + run.stderr).toBe(1);
    for (const name of badNames) {
      const out = block(run.stdout, name);
      // TLS was fine; only the login failed, and the block says so.
      expect(out).toMatch(/\n {2}tls +TLSv1\.[23], /);
      expect(out).not.toMatch(/\n {2}login +ok/);
      expect(out).toMatch(/\n {2}result +FAILED at login: AUTH: /);
    }
    expect(block(run.stdout, 'good')).toMatch(/\n {2}messages +1 \(1 unseen\)/);
    expect(block(run.stdout, 'good')).toMatch(/\n {2}result +ok/);
    expect(run.stdout).toContain(`1 of 5 mailbox(es) ok; failed: ${badNames.join(', ')}`);
    expect(run.stdout + run.stderr).not.toContain(wrong);

    const json = await runMailpoll(['test', '--config', config, '--json']);
    expect(json.code).toBe(1);
    const results = JSON.parse(json.stdout) as ProbeJson[];
    expect(results.map((r) => [r.mailbox, r.ok, r.failedAt, r.error?.code ?? null])).toEqual([
      ...badNames.map((name) => [name, false, 'login', 'AUTH']),
      ['good', true, null, null],
    ]);
    for (const r of results) expect(r.tls?.verified, r.mailbox).toBe(true);
    expect(json.stdout + json.stderr).not.toContain(wrong);

    // Only the named mailbox is probed.
    const one = await runMailpoll(['test', '--config', config, 'good']);
    expect(one.code, one.stdout + one.stderr).toBe(0);
    expect(one.stdout).not.toContain('bad-');
    expect(existsSync(join(dir, 'mailpoll.db'))).toBe(false);
  });

  it('a mailbox without the CA that signed the server certificate fails with a TLS error naming `ca:`, exit 1', async () => {
    const user = await newUser(server);
    const dir = tempDir();
    const mailboxes = VARIANTS.map((v) => {
      const { ca: _ca, ...entry } = mailboxEntry(server, v, user);
      return { ...entry, name: `no-ca-${v.protocol}-${v.tls}` };
    });
    const run = await runMailpoll(['test', '--config', writeConfig(dir, { mailboxes })]);
    expect(run.code, run.stdout + run.stderr).toBe(1);
    for (const { name } of mailboxes) {
      const out = block(run.stdout, name);
      expect(out).toMatch(/\n {2}result +FAILED at connect: TLS: .*`ca:`/);
      expect(out).not.toMatch(/\n {2}login +ok/);
    }
    expect(run.stdout + run.stderr).not.toContain(user.password);
  });

  it('a folder that does not exist fails at the folder step (FOLDER), exit 1', async () => {
    const user = await newUser(server);
    const dir = tempDir();
    const config = writeConfig(dir, { mailboxes: [{ ...mailboxEntry(server, VARIANTS[1]!, user), name: 'no-folder', folder: 'Nope' }] });
    const run = await runMailpoll(['test', '--config', config]);
    expect(run.code, run.stdout + run.stderr).toBe(1);
    const out = block(run.stdout, 'no-folder');
    expect(out).toMatch(/\n {2}login +ok\n/);
    expect(out).toMatch(/\n {2}result +FAILED at folder: FOLDER: folder "Nope" does not exist/);
  });

  it('an unknown mailbox name is a configuration error: exit 2, nothing probed', async () => {
    const user = await newUser(server);
    const dir = tempDir();
    const config = writeConfig(dir, { mailboxes: [{ ...mailboxEntry(server, VARIANTS[0]!, user), name: 'known' }] });
    const run = await runMailpoll(['test', '--config', config, 'known', 'nosuch']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('no mailbox named "nosuch"');
    expect(run.stdout).toBe('');
  });
});
