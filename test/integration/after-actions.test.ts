import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { query, runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser, type Variant } from '../support/scenario.js';

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
});

const IMAP: Variant = { protocol: 'imap', tls: 'implicit' };
const POP3: Variant = { protocol: 'pop3', tls: 'implicit' };

/** Delivers three messages, fetches once with the given action, returns what the server holds. */
async function fetchWith(variant: Variant, extra: Record<string, unknown>) {
  const user = await newUser(server);
  for (let i = 0; i < 3; i++) await server.deliver(user.user, plainMessage({ subject: `m${i}` }));
  const dir = tempDir();
  const db = join(dir, 'mailpoll.db');
  const config = writeConfig(dir, { database: db, mailboxes: [mailboxEntry(server, variant, user, extra)] });
  const run = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
  expect(run.code, run.stderr).toBe(0);
  expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM messages')[0]?.n).toBe(3);
  const owed = query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM receipts WHERE acknowledged_at IS NULL')[0]?.n;
  return { user, inbox: await server.listMaildir(user.user), owed, config, db };
}

describe('after: what happens on the server once a message is stored', () => {
  it('IMAP seen (the default) flags every stored message \\Seen and leaves it in place', async () => {
    const { inbox, owed } = await fetchWith(IMAP, {});
    expect(inbox).toHaveLength(3);
    for (const m of inbox) expect(m.flags).toContain('S');
    expect(owed).toBe(0);
  });

  it('IMAP move puts them into moveTo, creating the folder', async () => {
    const { user, inbox, owed } = await fetchWith(IMAP, { after: 'move', moveTo: 'Processed' });
    expect(inbox).toHaveLength(0);
    expect(await server.listMaildir(user.user, 'Processed')).toHaveLength(3);
    expect(owed).toBe(0);
  });

  it('IMAP delete expunges them', async () => {
    const { inbox, owed } = await fetchWith(IMAP, { after: 'delete' });
    expect(inbox).toHaveLength(0);
    expect(owed).toBe(0);
  });

  it('IMAP keep changes nothing: no flag, no move', async () => {
    const { inbox, owed } = await fetchWith(IMAP, { after: 'keep' });
    expect(inbox).toHaveLength(3);
    for (const m of inbox) expect(m.flags).not.toContain('S');
    expect(owed).toBe(0);
  });

  it('POP3 keep (the default) leaves them on the server and a second run fetches nothing', async () => {
    const { inbox, config } = await fetchWith(POP3, {});
    expect(inbox).toHaveLength(3);
    const again = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(JSON.parse(again.stdout).mailboxes[0]).toMatchObject({ fetched: 0, stored: 0 });
  });

  it('POP3 keep asks sizes only of new mail, and still sees a new oversize message as such', async () => {
    const { user, config, db } = await fetchWith(POP3, { maxMessageBytes: 10_000 });
    await server.deliver(user.user, plainMessage({ subject: 'new small' }));
    await server.deliver(user.user, plainMessage({ subject: 'new big' }, 'b'.repeat(20_000) + '\r\n'));
    const again = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(JSON.parse(again.stdout).mailboxes[0]).toMatchObject({ fetched: 1, stored: 1, oversize: 1 });
    expect(query<{ subject: string }>(db, "SELECT subject FROM messages WHERE subject LIKE 'new%'")).toEqual([{ subject: 'new small' }]);
  });

  it('POP3 delete removes them at QUIT', async () => {
    const { inbox, owed } = await fetchWith(POP3, { after: 'delete' });
    expect(inbox).toHaveLength(0);
    expect(owed).toBe(0);
  });

  it('an oversize message is left on the server, reported, and not fetched', async () => {
    const user = await newUser(server);
    await server.deliver(user.user, plainMessage({ subject: 'small' }));
    await server.deliver(user.user, plainMessage({ subject: 'big' }, 'x'.repeat(20_000) + '\r\n'));
    const dir = tempDir();
    const config = writeConfig(dir, { mailboxes: [mailboxEntry(server, IMAP, user, { after: 'delete', maxMessageBytes: 10_000 })] });
    const run = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(JSON.parse(run.stdout).mailboxes[0]).toMatchObject({ stored: 1, oversize: 1 });
    expect(await server.listMaildir(user.user)).toHaveLength(1);
    expect(query<{ subject: string }>(join(dir, 'mailpoll.db'), 'SELECT subject FROM messages')).toEqual([{ subject: 'small' }]);
  });
});
