import { describe, expect, it } from 'vitest';
import { classify } from '../../src/parse/classify.js';
import { parseMessage } from '../../src/parse/parse-message.js';
import { openDatabase } from '../../src/store/database.js';
import { MailStore } from '../../src/store/mail-store.js';
import type { TicketPolicy } from '../../src/tickets/assign.js';
import { ticketTokenMatcher } from '../../src/tickets/subject.js';
import { gmailVacation, postfixBounce } from '../fixtures/automated.js';
import { plainMessage, uniqueId } from '../fixtures/messages.js';

/** Threading, classes and policies as the store applies them, on a real SQLite database. */
function setup(loopGuard = { max: 10, windowMs: 3_600_000 }) {
  const db = openDatabase(':memory:');
  const store = new MailStore(db, { ticketToken: ticketTokenMatcher('[#NUMBER]'), loopGuard });
  let n = 0;
  const ingest = async (raw: Buffer, policy: TicketPolicy = { autoReplies: 'thread', bounces: 'thread' }) => {
    const parsed = await parseMessage(raw);
    n += 1;
    return store.ingest({ mailbox: 'm', serverId: `s${n}`, uid: undefined, uidValidity: '', raw, parsed, acknowledged: false, classification: classify(raw, parsed), policy });
  };
  const one = <T>(sql: string) => db.prepare(sql).get() as T;
  return { ingest, one };
}

describe('ticket rules in the store', () => {
  it('threads by the subject token; a subject that merely looks similar opens a new ticket', async () => {
    const { ingest } = setup();
    const first = await ingest(plainMessage({ subject: 'Printer on fire' }));
    expect(first).toMatchObject({ ticketNumber: 1001, newTicket: true });
    expect(await ingest(plainMessage({ subject: 'Re: [#1001] Printer on fire' }))).toMatchObject({ ticketNumber: 1001, newTicket: false });
    expect(await ingest(plainMessage({ subject: 'Re: Printer on fire' }))).toMatchObject({ ticketNumber: 1002, newTicket: true });
    expect(await ingest(plainMessage({ subject: 'about #1001 and [1001]' }))).toMatchObject({ ticketNumber: 1003, newTicket: true });
    expect(await ingest(plainMessage({ subject: 'Re: [#9999] unknown' }))).toMatchObject({ newTicket: true });
  });

  it('shows the subject without reply prefixes on the ticket, keeps it verbatim on the message', async () => {
    const { ingest, one } = setup();
    await ingest(plainMessage({ subject: 'AW: Re: Fwd: Angebot' }));
    expect(one<{ subject: string }>('SELECT subject FROM tickets')).toEqual({ subject: 'Angebot' });
    expect(one<{ subject: string }>('SELECT subject FROM messages')).toEqual({ subject: 'AW: Re: Fwd: Angebot' });
  });

  it('an auto-reply joins its ticket but never opens one by default; store keeps it without a ticket', async () => {
    const { ingest, one } = setup();
    const id = uniqueId('orig');
    await ingest(plainMessage({ messageId: id }));
    expect(await ingest(gmailVacation({ inReplyTo: id }))).toMatchObject({ outcome: 'stored', ticketNumber: 1001, newTicket: false });
    expect(await ingest(gmailVacation({ inReplyTo: 'nowhere@x', subject: 'Out of office' }))).toMatchObject({ outcome: 'stored', ticketNumber: undefined, newTicket: false });
    expect(await ingest(gmailVacation({ inReplyTo: id }), { autoReplies: 'store', bounces: 'thread' })).toMatchObject({ ticketNumber: undefined });
    expect(await ingest(gmailVacation({ inReplyTo: 'elsewhere@x', subject: 'Out of office' }), { autoReplies: 'open', bounces: 'thread' })).toMatchObject({ newTicket: true });
    expect(one<{ n: number }>("SELECT COUNT(*) AS n FROM messages WHERE class = 'auto-reply'")).toEqual({ n: 4 });
  });

  it('a bounce joins the ticket of the message it reports on', async () => {
    const { ingest, one } = setup();
    const id = uniqueId('sent');
    await ingest(plainMessage({ messageId: id, subject: 'Our answer' }));
    const bounce = postfixBounce({ messageId: id });
    expect(await ingest(bounce)).toMatchObject({ ticketNumber: 1001, newTicket: false });
    expect(one<{ class: string }>('SELECT class FROM messages ORDER BY id DESC LIMIT 1')).toEqual({ class: 'bounce' });
  });

  it('gives a message without Message-ID a stable synthetic one', async () => {
    const { ingest, one } = setup();
    const raw = Buffer.from('From: a@example.org\r\nSubject: no id\r\n\r\nbody\r\n');
    await ingest(raw);
    const row = one<{ message_id: string; message_id_synthetic: number }>('SELECT message_id, message_id_synthetic FROM messages');
    expect(row.message_id).toMatch(/@mailpoll\.invalid$/);
    expect(row.message_id_synthetic).toBe(1);
  });

  it('flags a sender who opens more tickets than the loop guard allows, and still stores everything', async () => {
    const { ingest, one } = setup({ max: 3, windowMs: 3_600_000 });
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await ingest(plainMessage({ subject: `loop ${i}`, from: 'robot@loop.example' })));
    expect(results.map((r) => (r.outcome === 'stored' ? r.probableLoop : null))).toEqual([false, false, false, true, true]);
    expect(one<{ n: number }>('SELECT COUNT(*) AS n FROM tickets WHERE probable_loop = 1')).toEqual({ n: 2 });
  });
});
