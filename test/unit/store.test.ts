import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/parse/parse-message.js';
import { dedupeHash } from '../../src/parse/raw-headers.js';
import { openDatabase } from '../../src/store/database.js';
import { MailStore } from '../../src/store/mail-store.js';
import { attachmentMessage, plainMessage, uniqueId } from '../fixtures/messages.js';

function fresh() {
  const db = openDatabase(':memory:');
  return { db, store: new MailStore(db) };
}

async function ingest(store: MailStore, raw: Buffer, serverId: string, mailbox = 'support', uid?: number) {
  return store.ingest({ mailbox, serverId, uid, uidValidity: '7', raw, parsed: await parseMessage(raw), acknowledged: false });
}

describe('MailStore.ingest', () => {
  it('opens a ticket, stores the raw bytes, and numbers tickets from 1001', async () => {
    const { db, store } = fresh();
    const raw = plainMessage({ subject: 'Help' });
    expect(await ingest(store, raw, '7:1')).toEqual({ outcome: 'stored', ticketNumber: 1001, newTicket: true, probableLoop: false });
    const row = db.prepare('SELECT raw, subject, from_address, parse_error FROM messages').get() as Record<string, unknown>;
    expect(Buffer.compare(row.raw as Buffer, raw)).toBe(0);
    expect(row).toMatchObject({ subject: 'Help', from_address: 'alice@example.org', parse_error: null });
    expect(await ingest(store, plainMessage(), '7:2')).toMatchObject({ ticketNumber: 1002 });
  });

  it('puts a reply on its parent ticket, by In-Reply-To or by References', async () => {
    const { store } = fresh();
    const parent = uniqueId();
    await ingest(store, plainMessage({ messageId: parent }), 'a');
    expect(await ingest(store, plainMessage({ inReplyTo: parent, subject: 'Re: x' }), 'b')).toMatchObject({ ticketNumber: 1001, newTicket: false });
    expect(await ingest(store, plainMessage({ references: ['unknown@x', parent] }), 'c')).toMatchObject({ ticketNumber: 1001 });
    expect(await ingest(store, plainMessage({ inReplyTo: 'never-seen@x' }), 'd')).toMatchObject({ ticketNumber: 1002, newTicket: true });
  });

  it('stores a message once even when it comes through two mailboxes with different trace headers', async () => {
    const { db, store } = fresh();
    const id = uniqueId();
    const a = Buffer.concat([Buffer.from('Delivered-To: a@example.com\r\nReceived: from x by y\r\n'), plainMessage({ messageId: id })]);
    const b = Buffer.concat([Buffer.from('Delivered-To: b@example.com\r\n'), plainMessage({ messageId: id })]);
    expect(dedupeHash(a)).toBe(dedupeHash(b));
    expect((await ingest(store, a, '1:1', 'first')).outcome).toBe('stored');
    expect((await ingest(store, b, 'X', 'second')).outcome).toBe('duplicate');
    expect(db.prepare('SELECT COUNT(*) AS n FROM messages').get()).toEqual({ n: 1 });
    expect(db.prepare("SELECT COUNT(*) AS n FROM receipts WHERE outcome = 'duplicate' AND message_ref IS NOT NULL").get()).toEqual({ n: 1 });
  });

  it('does not mistake a different mail with the same Message-ID for a duplicate', async () => {
    const { store } = fresh();
    const id = uniqueId();
    await ingest(store, plainMessage({ messageId: id }, 'one\r\n'), 'a');
    expect((await ingest(store, plainMessage({ messageId: id }, 'two\r\n'), 'b')).outcome).toBe('stored');
  });

  it('answers "known" for a server id it already has, writing nothing', async () => {
    const { db, store } = fresh();
    await ingest(store, plainMessage(), '7:1');
    expect(await ingest(store, plainMessage(), '7:1')).toEqual({ outcome: 'known' });
    expect(db.prepare('SELECT COUNT(*) AS n FROM messages').get()).toEqual({ n: 1 });
  });

  it('keeps attachment content once per hash', async () => {
    const { db, store } = fresh();
    await ingest(store, attachmentMessage(), 'a');
    await ingest(store, attachmentMessage(), 'b');
    expect(db.prepare('SELECT COUNT(*) AS n FROM attachments').get()).toEqual({ n: 4 });
    expect(db.prepare('SELECT COUNT(*) AS n FROM attachment_contents').get()).toEqual({ n: 2 });
    const inline = db.prepare('SELECT filename, content_id, inline FROM attachments WHERE content_id IS NOT NULL LIMIT 1').get();
    expect(inline).toEqual({ filename: 'shot.png', content_id: 'shot1@test', inline: 1 });
  });

  it('stores an unparseable message raw, with its error, on a ticket marked as such', async () => {
    const { db, store } = fresh();
    const raw = Buffer.from('Subject: broken\r\n\r\nbody');
    await store.ingest({
      mailbox: 'm', serverId: 's', uid: undefined, uidValidity: '', raw, acknowledged: false,
      parsed: { ...(await parseMessage(raw)), parseError: 'boom' },
    });
    expect(db.prepare('SELECT t.parse_failed, m.parse_error, m.raw FROM messages m JOIN tickets t ON t.id = m.ticket_id').get())
      .toEqual({ parse_failed: 1, parse_error: 'boom', raw });
  });

  it('advances the cursor with each message and resets it when UIDVALIDITY changes', async () => {
    const { store } = fresh();
    await ingest(store, plainMessage(), '7:5', 'support', 5);
    await ingest(store, plainMessage(), '7:9', 'support', 9);
    expect(store.cursor('support')).toEqual({ uidValidity: '7', lastUid: 9 });
    await store.ingest({ mailbox: 'support', serverId: '8:2', uid: 2, uidValidity: '8', raw: plainMessage(), parsed: await parseMessage(plainMessage()), acknowledged: false });
    expect(store.cursor('support')).toEqual({ uidValidity: '8', lastUid: 2 });
  });

  it('tracks acknowledgements owed to the server', async () => {
    const { store } = fresh();
    await ingest(store, plainMessage(), 'x');
    await ingest(store, plainMessage(), 'y');
    expect(store.unacknowledged('support')).toEqual(['x', 'y']);
    store.markAcknowledged('support', ['x']);
    expect(store.unacknowledged('support')).toEqual(['y']);
    expect(store.knownServerIds('support', ['x', 'y', 'z'])).toEqual(new Set(['x', 'y']));
  });
});

describe('dedupeHash', () => {
  const base = plainMessage({ messageId: 'same@x' });
  it('ignores trace fields added on delivery', () => {
    const traced = Buffer.concat([Buffer.from('Return-Path: <a@b>\r\nReceived: from a by b;\r\n date\r\nX-Spam-Score: 1\r\nResent-To: c@d\r\n'), base]);
    expect(dedupeHash(traced)).toBe(dedupeHash(base));
    // POP3 adds a line break before the final "." to a message that lacks one; IMAP does not.
    expect(dedupeHash(Buffer.concat([base, Buffer.from('\r\n')]))).toBe(dedupeHash(base));
  });
  it('tells apart mails that differ only in an author-set header', () => {
    const other = Buffer.from(base.toString('latin1').replace('Content-Type: text/plain', 'Content-Type: text/html'), 'latin1');
    expect(dedupeHash(other)).not.toBe(dedupeHash(base));
    const sender = Buffer.concat([Buffer.from('Sender: x@y\r\n'), base]);
    expect(dedupeHash(sender)).not.toBe(dedupeHash(base));
  });
  it('tells apart header-only messages without any identifying field', () => {
    expect(dedupeHash(Buffer.from('X-Foo: 1\r\n\r\n'))).not.toBe(dedupeHash(Buffer.from('Content-Type: text/plain\r\n\r\n')));
  });
});
