import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage, uniqueId } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { query, runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser, VARIANTS, type Variant } from '../support/scenario.js';

/**
 * A POP3 maildrop that keeps its mail is listed whole on every poll. Once a listing had every
 * message stored, a poll that gets the very same UIDL bytes knows nothing is new without reading
 * them (migration 007); any change to the listing (new mail) is read as before.
 */

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
});

const POP3S = VARIANTS.find((v) => v.protocol === 'pop3' && v.tls === 'implicit') as Variant;

describe('POP3, after: keep, an unchanged listing', () => {
  it('is remembered once all of it is stored, skipped while unchanged, and read again when mail arrives', async () => {
    const user = await newUser(server, 'known');
    for (const i of [1, 2, 3]) await server.deliver(user.user, plainMessage({ subject: `kept ${i}`, messageId: uniqueId(`kept${i}`) }));
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, { database: db, mailboxes: [mailboxEntry(server, POP3S, user, { name: 'kept', after: 'keep' })] });
    const poll = async () => {
      const run = await runMailpoll(['fetch', '--now', '--json', '--config', config]);
      expect(run.code, run.stderr).toBe(0);
      return JSON.parse(run.stdout).mailboxes[0] as { fetched: number; stored: number; duplicates: number };
    };
    const remembered = () => query<{ d: string | null }>(db, "SELECT known_listing_sha256 AS d FROM mailbox_state WHERE mailbox = 'kept'")[0]?.d ?? null;

    // First poll: three new messages, so the listing was not all stored when it was read.
    expect(await poll()).toMatchObject({ fetched: 3, stored: 3 });
    expect(remembered()).toBeNull();
    // Second poll: all stored; the listing is remembered.
    expect(await poll()).toMatchObject({ fetched: 0 });
    const first = remembered();
    expect(first).toMatch(/^[0-9a-f]{64}$/);

    // New mail changes the listing: it is read, and only the new message is fetched.
    await server.deliver(user.user, plainMessage({ subject: 'kept 4', messageId: uniqueId('kept4') }));
    expect(await poll()).toMatchObject({ fetched: 1, stored: 1 });
    expect(await poll()).toMatchObject({ fetched: 0 });
    expect(remembered()).toMatch(/^[0-9a-f]{64}$/);
    expect(remembered()).not.toBe(first);

    // The unchanged listing is not read at all: even with the receipts taken away behind
    // mailpoll's back (never done by mailpoll itself), the next poll fetches nothing.
    tamper(db, "DELETE FROM receipts WHERE mailbox = 'kept'");
    expect(await poll()).toMatchObject({ fetched: 0, duplicates: 0 });
    // Forgetting the listing makes the poll read it again, and find the messages unreceipted.
    tamper(db, "UPDATE mailbox_state SET known_listing_sha256 = NULL WHERE mailbox = 'kept'");
    expect(await poll()).toMatchObject({ fetched: 4, stored: 0, duplicates: 4 });
  });
});

/** A change behind mailpoll's back, between two runs (the support helpers only read). */
function tamper(file: string, sql: string): void {
  const db = new Database(file);
  try {
    db.prepare(sql).run();
  } finally {
    db.close();
  }
}
