import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENCODED_SUBJECT, LATIN1_TEXT, plainMessage, standardMix, uniqueId } from '../fixtures/messages.js';
import { makeTestCertificates } from '../support/certs.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { query, runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser, VARIANTS } from '../support/scenario.js';

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
});

interface MessageRow {
  subject: string;
  raw: Buffer;
  text_body: string | null;
  html_body: string | null;
  ticket_id: number;
  message_id: string;
}

describe.each(VARIANTS)('$protocol with tls: $tls', (variant) => {
  it('stores a mix of messages byte for byte, stores nothing twice, and threads a reply', async () => {
    const user = await newUser(server);
    const mix = standardMix();
    for (const m of mix) await server.deliver(user.user, m.raw);
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, { database: db, mailboxes: [mailboxEntry(server, variant, user)] });

    const first = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(first.stderr).not.toContain(user.password);
    expect(first.code, first.stderr).toBe(0);
    const summary = JSON.parse(first.stdout) as { ok: boolean; mailboxes: { stored: number; fetched: number }[] };
    expect(summary.mailboxes[0]).toMatchObject({ fetched: mix.length, stored: mix.length });

    const rows = query<MessageRow>(db, 'SELECT subject, raw, text_body, html_body, ticket_id, message_id FROM messages ORDER BY id');
    expect(rows).toHaveLength(mix.length);
    // The bytes the server served are the fixture bytes: they are CRLF already (see fixtures).
    const stored = new Set(rows.map((r) => r.raw.toString('base64')));
    for (const m of mix) expect(stored.has(m.raw.toString('base64')), `${m.name} stored byte for byte`).toBe(true);
    const bySubject = new Map(rows.map((r) => [r.subject, r]));
    expect(bySubject.has(ENCODED_SUBJECT)).toBe(true);
    expect(bySubject.get('Latin-1 body')?.text_body).toContain(LATIN1_TEXT);
    expect(bySubject.get('VPN down')?.html_body).toContain('<b>VPN</b>');
    expect(query<{ n: number }>(db, "SELECT COUNT(*) AS n FROM attachments WHERE filename = 'invoice.pdf'")[0]?.n).toBe(1);

    const second = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).mailboxes[0]).toMatchObject({ fetched: 0, stored: 0 });
    expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM messages')[0]?.n).toBe(mix.length);

    const parent = rows[0] as MessageRow;
    await server.deliver(user.user, plainMessage({ subject: 'Re: printer', inReplyTo: parent.message_id, messageId: uniqueId('reply') }));
    const third = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(third.code, third.stderr).toBe(0);
    const reply = query<{ ticket_id: number }>(db, "SELECT ticket_id FROM messages WHERE subject = 'Re: printer'");
    expect(reply).toEqual([{ ticket_id: parent.ticket_id }]);
    expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM tickets')[0]?.n).toBe(mix.length);
  });
});

describe('TLS verification', () => {
  it('refuses the server certificate without the CA and accepts it with ca:', async () => {
    const user = await newUser(server);
    await server.deliver(user.user, plainMessage());
    const dir = tempDir();
    const trusted = mailboxEntry(server, VARIANTS[1]!, user);
    const { ca: _ca, ...untrusted } = trusted;
    const config = writeConfig(dir, { mailboxes: [{ ...untrusted, name: 'untrusted' }] });
    const refused = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(refused.code).toBe(1);
    const failed = JSON.parse(refused.stdout).mailboxes[0];
    expect(failed).toMatchObject({ ok: false, errorCode: 'TLS', stored: 0 });
    expect(failed.error).toMatch(/ca:/);

    const starttls = writeConfig(dir, { mailboxes: [{ ...mailboxEntry(server, VARIANTS[2]!, user), ca: undefined, name: 'untrusted-stls' }] }, 'b.yaml');
    const refusedStls = await runMailpoll(['fetch', '--now', '--config', starttls, '--json']);
    expect(JSON.parse(refusedStls.stdout).mailboxes[0]).toMatchObject({ ok: false, errorCode: 'TLS' });

    // A ca: that did not sign the server certificate is refused as well: it adds to the roots, it
    // never loosens the check. Over implicit TLS and STARTTLS, IMAP and POP3.
    const other = await makeTestCertificates(join(dir, 'other-ca'));
    const wrongCa = VARIANTS.map((v, i) => ({ ...mailboxEntry(server, v, user), ca: other.caFile, name: `wrong-ca-${i}` }));
    const wrong = await runMailpoll(['fetch', '--now', '--config', writeConfig(dir, { mailboxes: wrongCa }, 'd.yaml'), '--json']);
    expect(wrong.code).toBe(1);
    for (const m of JSON.parse(wrong.stdout).mailboxes) expect(m).toMatchObject({ ok: false, errorCode: 'TLS', stored: 0 });

    const ok = await runMailpoll(['fetch', '--now', '--config', writeConfig(dir, { mailboxes: [trusted] }, 'c.yaml'), '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).mailboxes[0]).toMatchObject({ ok: true, stored: 1 });
  });
});

describe('failures are contained', () => {
  it('a wrong password fails that mailbox only, exit 1, and the password is never printed', async () => {
    const good = await newUser(server);
    const bad = await newUser(server);
    await server.deliver(good.user, plainMessage());
    await server.deliver(bad.user, plainMessage());
    const dir = tempDir();
    const wrong = 'Wrong-Password-123';
    const config = writeConfig(dir, {
      mailboxes: [
        { ...mailboxEntry(server, VARIANTS[0]!, bad), name: 'bad-imap', password: wrong },
        { ...mailboxEntry(server, VARIANTS[3]!, bad), name: 'bad-pop3', password: wrong },
        { ...mailboxEntry(server, VARIANTS[1]!, good), name: 'good' },
      ],
    });
    // --verbose: the summary table, which stdout (not a terminal) gets only on request.
    const run = await runMailpoll(['fetch', '--now', '--verbose', '--config', config]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/bad-imap\s+FAILED/);
    expect(run.stdout).toMatch(/bad-pop3\s+FAILED/);
    expect(run.stdout).toMatch(/good\s+ok\s+1\s+1/);
    expect(run.stdout).toMatch(/bad-imap: AUTH/);
    expect(run.stdout + run.stderr).not.toContain(wrong);
    expect(query<{ mailbox: string; consecutive_failures: number }>(join(dir, 'mailpoll.db'), 'SELECT mailbox, consecutive_failures FROM mailbox_state ORDER BY mailbox'))
      .toEqual([
        { mailbox: 'bad-imap', consecutive_failures: 1 },
        { mailbox: 'bad-pop3', consecutive_failures: 1 },
        { mailbox: 'good', consecutive_failures: 0 },
      ]);
  });

  it('a config error names file, line and field, exits 2 and fetches nothing', async () => {
    const dir = tempDir();
    const file = join(dir, 'mailpoll.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, ['mailboxes:', '  - name: x', '    protocol: imap', '    host: 127.0.0.2', '    port: high', '    username: u', '    password: p', ''].join('\n'));
    const run = await runMailpoll(['fetch', '--now', '--config', file]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${file}:5:`);
    expect(run.stderr).toContain('mailboxes[0].port');
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(dir, 'mailpoll.db'))).toBe(false);
  });
});
