import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { classify } from '../../src/parse/classify.js';
import { parseMessage } from '../../src/parse/parse-message.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { MailStore } from '../../src/store/mail-store.js';
import { attachmentContent, EXPORT_COLUMNS, exportTickets, listTickets, showTicket } from '../../src/store/ticket-queries.js';
import { attachmentMessage, encodedSubjectMessage, ENCODED_SUBJECT, plainMessage, uniqueId } from '../fixtures/messages.js';

const INVOICE = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from('binary tail')]);
const PARENT = uniqueId('parent');

/**
 * Times are set for each message so the order is certain (the store stamps `now`):
 *  09:00 #1001 opened in support by Alice           09:10 #1002 opened in sales (RFC 2047 subject)
 *  09:20 #1003 opened in support, unparseable       09:30 Bob replies on #1001 with two attachments
 *  09:40 an auto-reply to Alice's mail joins #1001  09:50 an auto-reply to nothing: stored, no ticket
 */
let db: Db;
let ids: { invoice: number; shot: number };

async function ingest(store: MailStore, at: string, mailbox: string, raw: Buffer, serverId: string, parseError?: string) {
  vi.setSystemTime(new Date(at));
  const parsed = { ...(await parseMessage(raw)), ...(parseError === undefined ? {} : { parseError }) };
  return store.ingest({ mailbox, serverId, uid: undefined, uidValidity: '', raw, parsed, acknowledged: false, classification: classify(raw, parsed) });
}

beforeAll(async () => {
  // Only Date is faked: mailparser needs real timers.
  vi.useFakeTimers({ toFake: ['Date'] });
  db = openDatabase(':memory:');
  const store = new MailStore(db);
  await ingest(store, '2026-11-24T09:00:00.000Z', 'support', plainMessage({ messageId: PARENT, subject: 'Printer on fire' }), 'a');
  await ingest(store, '2026-11-24T09:10:00.000Z', 'sales', encodedSubjectMessage({ from: 'Carla <carla@example.net>' }), 'b');
  await ingest(store, '2026-11-24T09:20:00.000Z', 'support', Buffer.from('Subject: broken\r\n\r\nbody'), 'c', 'boom');
  await ingest(store, '2026-11-24T09:30:00.000Z', 'support',
    attachmentMessage({ from: 'Bob Builder <bob@example.com>', subject: 'Re: Printer on fire', inReplyTo: PARENT, date: 'Tue, 24 Nov 2026 09:29:00 +0000' }, INVOICE), 'd');
  await ingest(store, '2026-11-24T09:40:00.000Z', 'support',
    plainMessage({ from: 'Alice <alice@example.org>', subject: 'Out of office', inReplyTo: PARENT, extraHeaders: ['Auto-Submitted: auto-replied'] }, 'I am away.\r\n'), 'e');
  await ingest(store, '2026-11-24T09:50:00.000Z', 'support',
    plainMessage({ from: 'robot@example.org', subject: 'Auto: thanks', extraHeaders: ['Auto-Submitted: auto-replied'] }, 'Thanks.\r\n'), 'f');
  vi.useRealTimers();
  const rows = db.prepare('SELECT id, filename FROM attachments ORDER BY id').all() as { id: number; filename: string }[];
  ids = { invoice: rows.find((r) => r.filename === 'invoice.pdf')?.id ?? -1, shot: rows.find((r) => r.filename === 'shot.png')?.id ?? -1 };
});

afterEach(() => {
  vi.useRealTimers();
});

describe('listTickets', () => {
  it('lists tickets most recently updated first, a reply moving its ticket to the top', () => {
    const tickets = listTickets(db, { limit: 50 });
    expect(tickets.map((t) => t.number)).toEqual([1001, 1003, 1002]);
    expect(tickets[0]).toEqual({
      number: 1001,
      subject: 'Printer on fire',
      status: 'open',
      requester: { name: 'Alice Example', address: 'alice@example.org' },
      mailbox: 'support',
      messageCount: 3,
      createdAt: '2026-11-24T09:00:00.000Z',
      updatedAt: '2026-11-24T09:40:00.000Z',
      parseFailed: false,
    });
    expect(tickets.find((t) => t.number === 1002)?.subject).toBe(ENCODED_SUBJECT);
    expect(tickets.find((t) => t.number === 1003)).toMatchObject({ parseFailed: true, requester: { name: null, address: null } });
  });

  it('filters by mailbox, status and time of last update, and stops at the limit', () => {
    expect(listTickets(db, { mailbox: 'sales', limit: 50 }).map((t) => t.number)).toEqual([1002]);
    expect(listTickets(db, { since: new Date('2026-11-24T09:15:00Z'), limit: 50 }).map((t) => t.number)).toEqual([1001, 1003]);
    expect(listTickets(db, { since: new Date('2026-11-24T09:40:00Z'), limit: 50 }).map((t) => t.number)).toEqual([1001]);
    expect(listTickets(db, { limit: 2 }).map((t) => t.number)).toEqual([1001, 1003]);
    expect(listTickets(db, { status: 'closed', limit: 50 })).toEqual([]);
    db.prepare("UPDATE tickets SET status = 'closed' WHERE number = 1003").run();
    try {
      expect(listTickets(db, { status: 'closed', limit: 50 }).map((t) => t.number)).toEqual([1003]);
      expect(listTickets(db, { status: 'open', mailbox: 'support', limit: 50 }).map((t) => t.number)).toEqual([1001]);
    } finally {
      db.prepare("UPDATE tickets SET status = 'open' WHERE number = 1003").run();
    }
  });
});

describe('showTicket', () => {
  it('returns the whole thread oldest first, with sender, dates, class and text', () => {
    const t = showTicket(db, 1001);
    expect(t).toMatchObject({ number: 1001, messageCount: 3, mailbox: 'support' });
    expect(t?.messages.map((m) => [m.sender.address, m.class, m.receivedAt])).toEqual([
      ['alice@example.org', 'normal', '2026-11-24T09:00:00.000Z'],
      ['bob@example.com', 'normal', '2026-11-24T09:30:00.000Z'],
      ['alice@example.org', 'auto-reply', '2026-11-24T09:40:00.000Z'],
    ]);
    const first = t?.messages[0];
    expect(first).toMatchObject({
      messageId: PARENT,
      sender: { name: 'Alice Example', address: 'alice@example.org' },
      sentAt: '2026-11-24T09:30:00.000Z',
      subject: 'Printer on fire',
      parseError: null,
      headersOnly: false,
      hasHtml: false,
      attachments: [],
    });
    expect(first?.text).toContain('the printer is on fire.');
    expect(t?.messages[1]).toMatchObject({ sentAt: '2026-11-24T09:29:00.000Z', hasHtml: true, subject: 'Re: Printer on fire' });
  });

  it("lists each message's attachments with id, name, type, size, content id and inline flag", () => {
    const reply = showTicket(db, 1001)?.messages[1];
    expect(reply?.attachments).toEqual([
      { id: ids.shot, filename: 'shot.png', contentType: 'image/png', size: 29, contentId: 'shot1@test', inline: true },
      { id: ids.invoice, filename: 'invoice.pdf', contentType: 'application/pdf', size: INVOICE.length, contentId: null, inline: false },
    ]);
  });

  it('shows a message that could not be parsed with its error', () => {
    const t = showTicket(db, 1003);
    expect(t?.parseFailed).toBe(true);
    expect(t?.messages).toHaveLength(1);
    expect(t?.messages[0]).toMatchObject({ parseError: 'boom', subject: 'broken', sender: { name: null, address: null } });
  });

  it('returns undefined for a number no ticket has', () => {
    expect(showTicket(db, 999)).toBeUndefined();
    expect(showTicket(db, 1004)).toBeUndefined();
  });
});

describe('attachmentContent', () => {
  it('returns the exact bytes, name and type of an attachment', () => {
    const a = attachmentContent(db, ids.invoice);
    expect(a?.filename).toBe('invoice.pdf');
    expect(a?.contentType).toBe('application/pdf');
    expect(Buffer.compare(a?.content ?? Buffer.alloc(0), INVOICE)).toBe(0);
  });

  it('returns undefined for an unknown id', () => {
    expect(attachmentContent(db, 987654)).toBeUndefined();
  });
});

describe('exportTickets', () => {
  it('yields one flat row per message, ticket by ticket, thread order within, ticketless messages last', () => {
    const rows = [...exportTickets(db)];
    expect(rows.map((r) => [r.ticket, r.fromAddress, r.class])).toEqual([
      [1001, 'alice@example.org', 'normal'],
      [1001, 'bob@example.com', 'normal'],
      [1001, 'alice@example.org', 'auto-reply'],
      [1002, 'carla@example.net', 'normal'],
      [1003, null, 'normal'],
      [null, 'robot@example.org', 'auto-reply'],
    ]);
    for (const row of rows) {
      expect(Object.keys(row).sort()).toEqual([...EXPORT_COLUMNS].sort());
      for (const value of Object.values(row)) expect(['string', 'number', 'boolean'].includes(typeof value) || value === null).toBe(true);
    }
    expect(rows[1]).toMatchObject({
      ticketStatus: 'open', ticketSubject: 'Printer on fire', mailbox: 'support', to: 'support@example.com', cc: '',
      subject: 'Re: Printer on fire', attachments: 2, headersOnly: false, parseError: null,
    });
    expect(rows[4]).toMatchObject({ parseError: 'boom', to: '' });
    expect(rows[5]).toMatchObject({ ticketStatus: null, ticketSubject: null, text: 'Thanks.\n' });
  });

  it('filters by the message mailbox, the ticket status and the time stored', () => {
    expect([...exportTickets(db, { mailbox: 'sales' })].map((r) => r.ticket)).toEqual([1002]);
    expect([...exportTickets(db, { since: new Date('2026-11-24T09:35:00Z') })].map((r) => r.ticket)).toEqual([1001, null]);
    expect([...exportTickets(db, { status: 'open' })].map((r) => r.ticket)).toEqual([1001, 1001, 1001, 1002, 1003]);
  });

  it('streams: the caller can stop early and use the connection again', () => {
    const rows = exportTickets(db);
    expect(rows.next().value?.ticket).toBe(1001);
    rows.return(undefined);
    expect(listTickets(db, { limit: 1 })).toHaveLength(1);
  });
});
