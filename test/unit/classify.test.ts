import { describe, expect, it } from 'vitest';
import { classify, type Classification } from '../../src/parse/classify.js';
import { parseMessage } from '../../src/parse/parse-message.js';
import type { ParsedMessage } from '../../src/parse/types.js';
import {
  brokenBoundaryBounce,
  eximBounce,
  exchangeBounce,
  exchangeOutOfOffice,
  forwardedBounce,
  gmailBounce,
  gmailVacation,
  nullSenderMessage,
  postfixBounce,
  qmailBounce,
  readReceipt,
  ruleForwardedMessage,
  sendmailHeadersBounce,
  subjectOnlyAutoReply,
  wrappedReport,
} from '../fixtures/automated.js';
import { plainMessage, uniqueId } from '../fixtures/messages.js';

async function classified(raw: Buffer): Promise<Classification> {
  return classify(raw, await parseMessage(raw));
}

const NORMAL: Classification = { class: 'normal', reason: '', originalMessageIds: [] };
const auto = (reason: string): Classification => ({ class: 'auto-reply', reason, originalMessageIds: [] });

/** What mailparser-less callers hand in: nothing known. */
const EMPTY: ParsedMessage = {
  messageId: undefined,
  inReplyTo: undefined,
  references: [],
  subject: undefined,
  from: undefined,
  replyTo: [],
  to: [],
  cc: [],
  date: undefined,
  text: undefined,
  html: undefined,
  attachments: [],
  parseError: 'unreadable',
};

describe('classify: bounces and where their originals are', () => {
  it('reads a Postfix DSN: the returned message/rfc822 gives its Message-ID, then what it answered', async () => {
    const original = { messageId: uniqueId('reply'), inReplyTo: uniqueId('customer'), references: [uniqueId('first'), uniqueId('second')] };
    expect(await classified(postfixBounce(original))).toEqual({
      class: 'bounce',
      reason: 'multipart/report delivery-status',
      originalMessageIds: [original.messageId, original.inReplyTo, original.references[1], original.references[0]],
    });
  });

  it('reads a Sendmail DSN: text/rfc822-headers with a folded Message-Id, report-type in mixed case and quotes', async () => {
    const original = { messageId: uniqueId('reply'), inReplyTo: uniqueId('customer') };
    expect(await classified(sendmailHeadersBounce(original))).toEqual({
      class: 'bounce',
      reason: 'multipart/report delivery-status',
      originalMessageIds: [original.messageId, original.inReplyTo],
    });
  });

  it('reads a Gmail DSN with report-type after the boundary parameter', async () => {
    const original = { messageId: uniqueId('reply') };
    expect(await classified(gmailBounce(original))).toEqual({
      class: 'bounce',
      reason: 'multipart/report delivery-status',
      originalMessageIds: [original.messageId],
    });
  });

  it('reads an Exchange NDR: quoted-printable text/rfc822-headers are decoded, soft line break included', async () => {
    const original = { messageId: 'a-rather-long-message-id-0123456789@helpdesk.example.com' };
    expect(await classified(exchangeBounce(original))).toEqual({
      class: 'bounce',
      reason: 'multipart/report delivery-status',
      originalMessageIds: [original.messageId],
    });
  });

  it('reads an Exim bounce by X-Failed-Recipients and finds the original in the copied headers of its body', async () => {
    const original = { messageId: uniqueId('reply'), inReplyTo: uniqueId('customer') };
    expect(await classified(eximBounce(original))).toEqual({
      class: 'bounce',
      reason: 'X-Failed-Recipients',
      originalMessageIds: [original.messageId, original.inReplyTo],
    });
  });

  it('reads a qmail "failure notice" by its MAILER-DAEMON sender', async () => {
    const original = { messageId: uniqueId('reply') };
    expect(await classified(qmailBounce(original))).toEqual({
      class: 'bounce',
      reason: 'From: MAILER-DAEMON',
      originalMessageIds: [original.messageId],
    });
  });

  it('finds a message/delivery-status part inside multipart/mixed, whatever the case of its type', async () => {
    const original = { messageId: uniqueId('reply') };
    expect(await classified(wrappedReport(original))).toEqual({
      class: 'bounce',
      reason: 'message/delivery-status part',
      originalMessageIds: [original.messageId],
    });
    // The byte-level filter before the regex must not know only the usual spellings.
    const oddCase = Buffer.from(wrappedReport(original).toString('latin1').replace('Message/Delivery-Status', 'MESSAGE/dElIvErY-STATUS'), 'latin1');
    expect(oddCase.includes('dElIvErY-STATUS')).toBe(true);
    expect(await classified(oddCase)).toEqual({
      class: 'bounce',
      reason: 'message/delivery-status part',
      originalMessageIds: [original.messageId],
    });
  });

  it('still sees a delivery-status part when the multipart boundary is missing, and scans the text for the original', async () => {
    const original = { messageId: uniqueId('reply') };
    expect(await classified(brokenBoundaryBounce(original))).toEqual({
      class: 'bounce',
      reason: 'message/delivery-status part',
      originalMessageIds: [original.messageId],
    });
  });

  it('is a bounce with no originals when the report lost its boundary parameter', async () => {
    const raw = Buffer.from(
      [
        'From: Relay <relay@relay.example.net>',
        'Subject: Report',
        'Message-ID: <truncated@relay.example.net>',
        'Content-Type: multipart/report; report-type=delivery-status; bo',
        '',
        'Final-Recipient: rfc822; nobody@nowhere.example',
        '',
      ].join('\r\n'),
    );
    expect(await classified(raw)).toEqual({ class: 'bounce', reason: 'multipart/report delivery-status', originalMessageIds: [] });
  });

  it('returns no originals when the report carries a placeholder instead of the message', async () => {
    const b = 'placeholder-b';
    const raw = Buffer.from(
      [
        'From: <postmaster@example.net>',
        'Message-ID: <ndr-1@example.net>',
        `Content-Type: multipart/report; report-type=delivery-status; boundary="${b}"`,
        '',
        `--${b}`,
        'Content-Type: message/delivery-status',
        '',
        'Action: failed',
        `--${b}`,
        'Content-Type: message/rfc822',
        '',
        '[original message goes here]',
        `--${b}--`,
        '',
      ].join('\r\n'),
    );
    expect(await classified(raw)).toEqual({ class: 'bounce', reason: 'multipart/report delivery-status', originalMessageIds: [] });
  });

  it.each([
    ['"Mail Delivery Subsystem" <mailer-daemon@mx.example.org>', 'From: MAILER-DAEMON'],
    ['MAILER-DAEMON (Mail Delivery System)', 'From: MAILER-DAEMON'],
    ['PostMaster@example.net', 'From: postmaster'],
    ['Postmaster <POSTMASTER@example.net>', 'From: postmaster'],
  ])('a plain message from %s is a bounce', async (from, reason) => {
    expect(await classified(plainMessage({ from }))).toEqual({ class: 'bounce', reason, originalMessageIds: [] });
  });

  it.each([
    'Undelivered Mail Returned to Sender',
    'Delivery Status Notification (Failure)',
    'Returned mail: see transcript for details',
    'failure notice',
    'Mail delivery failed: returning message to sender',
    'Undeliverable: Re: [#1001] Printer on fire',
  ])('a null reverse-path with the subject %j is a bounce', async (subject) => {
    expect(await classified(nullSenderMessage(subject, 'See the attached transcript.'))).toEqual({
      class: 'bounce',
      reason: 'Return-Path: <> with DSN subject',
      originalMessageIds: [],
    });
  });

  it('a null reverse-path with a delivery-failure body is a bounce; its own Message-ID is never an original', async () => {
    const own = uniqueId('gw');
    const original = uniqueId('reply');
    const body = [
      'Your message could not be delivered to nobody@nowhere.example.',
      '',
      'Headers of this notice, for reference:',
      `Message-ID: <${own}>`,
      '',
      'Headers of your message:',
      'From: Support <support@example.com>',
      `Message-ID: <${original}>`,
    ].join('\r\n');
    expect(await classified(nullSenderMessage('Notice', body, own))).toEqual({
      class: 'bounce',
      reason: 'Return-Path: <> with DSN body',
      originalMessageIds: [original],
    });
  });

  it('a bounce that is also Auto-Submitted is a bounce (bounces are checked first)', async () => {
    const result = await classified(plainMessage({ from: 'MAILER-DAEMON@mx.example.org', extraHeaders: ['Auto-Submitted: auto-replied'] }));
    expect(result.class).toBe('bounce');
  });
});

describe('classify: automatic replies', () => {
  it('knows a Gmail vacation reply by Auto-Submitted: auto-replied', async () => {
    expect(await classified(gmailVacation({ inReplyTo: uniqueId('reply') }))).toEqual(auto('Auto-Submitted: auto-replied'));
  });

  it('knows an Exchange out-of-office by Auto-Submitted: auto-generated', async () => {
    expect(await classified(exchangeOutOfOffice())).toEqual(auto('Auto-Submitted: auto-generated'));
  });

  it('knows an Exchange out-of-office without Auto-Submitted by X-Auto-Response-Suppress from the null sender', async () => {
    expect(await classified(exchangeOutOfOffice({ autoSubmitted: false }))).toEqual(auto('X-Auto-Response-Suppress: All with Return-Path: <>'));
  });

  it.each([
    ['OOF, AutoReply', 'X-Auto-Response-Suppress: OOF, AutoReply with Return-Path: <>'],
    ['DR', 'X-Auto-Response-Suppress: DR with Return-Path: <>'],
    ['rn, nrn', 'X-Auto-Response-Suppress: RN, NRN with Return-Path: <>'],
  ])('reads X-Auto-Response-Suppress: %s', async (suppress, reason) => {
    expect(await classified(exchangeOutOfOffice({ autoSubmitted: false, suppress }))).toEqual(auto(reason));
  });

  it('knows an Exchange out-of-office without Auto-Submitted or null sender by its subject', async () => {
    expect(await classified(exchangeOutOfOffice({ autoSubmitted: false, nullSender: false }))).toEqual(auto('Subject: Automatic reply'));
  });

  it.each([
    ['Automatische Antwort', 'Subject: Automatische Antwort'],
    ['Réponse automatique', 'Subject: Réponse automatique'],
    ['Respuesta automática', 'Subject: Respuesta automática'],
  ])('knows an Exchange out-of-office with no header markers by its RFC 2047 subject prefix %j', async (prefix, reason) => {
    expect(await classified(exchangeOutOfOffice({ autoSubmitted: false, suppress: '', nullSender: false, prefix }))).toEqual(auto(reason));
  });

  it.each([
    ['Auto-Submitted: auto-replied', 'Auto-Submitted: auto-replied'],
    ['AUTO-SUBMITTED: Auto-Replied', 'Auto-Submitted: auto-replied'],
    ['auto-submitted: auto-generated (failure)', 'Auto-Submitted: auto-generated'],
    ['Auto-Submitted: auto-notified; owner-email="list-owner@example.org"', 'Auto-Submitted: auto-notified'],
    ['Auto-Submitted:\r\n\tauto-replied', 'Auto-Submitted: auto-replied'],
    ['X-Autoreply: yes', 'X-Autoreply: yes'],
    ['x-autoreply:', 'X-Autoreply'],
    ['X-Autorespond: Vacation', 'X-Autorespond: vacation'],
    ['X-AutoResponder: true', 'X-Autoresponder: true'],
    ['Precedence: bulk', 'Precedence: bulk'],
    ['PRECEDENCE: Junk', 'Precedence: junk'],
    ['Precedence:\r\n list', 'Precedence: list'],
    ['Precedence: auto_reply', 'Precedence: auto_reply'],
    ['X-Mailer: Acme AutoResponder 2.1', 'X-Mailer: Acme AutoResponder 2.1'],
  ])('knows the header %j', async (header, reason) => {
    expect(await classified(plainMessage({ extraHeaders: [header] }))).toEqual(auto(reason));
  });

  it.each([
    ['Out of Office: [#1001] Printer on fire', 'Subject: Out of Office'],
    ['Out of Office AutoReply: Printer on fire', 'Subject: Out of Office AutoReply'],
    ['Automatic reply: Printer on fire', 'Subject: Automatic reply'],
    ['AUTO: Dave Example is out of the office (returning 01.12.2026)', 'Subject: Auto'],
    ['Autoreply: Printer on fire', 'Subject: Autoreply'],
    ['Abwesenheitsnotiz: Drucker brennt', 'Subject: Abwesenheitsnotiz'],
    ['Réponse automatique : Imprimante en feu', 'Subject: Réponse automatique'],
    ['Fuori sede: stampante in fiamme', 'Subject: Fuori sede'],
    ['Automatic reply：Printer on fire', 'Subject: Automatic reply'],
  ])('knows the out-of-office subject %j', async (subject, reason) => {
    expect(await classified(subjectOnlyAutoReply(subject))).toEqual(auto(reason));
  });

  it('treats any other multipart/report as machine-made, naming an unreadable report type "unknown"', async () => {
    const raw = Buffer.from('From: a@example.org\r\nContent-Type: multipart/report; report-type="feed (x\r\n\r\nbody\r\n');
    expect(classify(raw, EMPTY)).toEqual(auto('multipart/report unknown'));
  });

  it('treats a read receipt (multipart/report disposition-notification) as automatic, not as a bounce', async () => {
    expect(await classified(readReceipt(uniqueId('reply')))).toEqual(auto('multipart/report disposition-notification'));
  });
});

describe('classify: normal mail stays normal', () => {
  it('a plain human mail without Precedence or any marker', async () => {
    expect(await classified(plainMessage())).toEqual(NORMAL);
  });

  it.each([
    'Re: auto parts order',
    'Automatic reply not working since Monday',
    'Out of office tomorrow, please cover my tickets',
    'Re: Automatic reply: Printer on fire',
    'Auto-renewal failed for our licence',
    'Undelivered parcel: where is my order?',
    'Returned mail from the post room',
  ])('the subject %j alone is not a marker', async (subject) => {
    expect(await classified(plainMessage({ subject }))).toEqual(NORMAL);
  });

  it.each([
    'Auto-Submitted: no',
    'Auto-Submitted: No (sent by a person)',
    'X-Autoreply: no',
    'Precedence: first-class',
    'Precedence: urgent',
    'X-Mailer: Microsoft Outlook 16.0',
    // Outlook and Exchange distribution lists put it on mail from people (see classify.ts).
    'X-Auto-Response-Suppress: All',
    'X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply',
    'X-Auto-Response-Suppress: None',
  ])(
    'the header %j is not a marker',
    async (header) => {
      expect(await classified(plainMessage({ extraHeaders: [header] }))).toEqual(NORMAL);
    },
  );

  it.each(['Alice <alice@postmaster.example.org>', 'postmaster-team@example.org', 'Mailer Daemon Fan <fan@example.org>'])(
    'the sender %j is not a mailer daemon',
    async (from) => {
      expect(await classified(plainMessage({ from }))).toEqual(NORMAL);
    },
  );

  it('a null reverse-path with an ordinary subject and body is not a bounce', async () => {
    expect(await classified(nullSenderMessage('Your invoice for November', 'Please find the invoice attached.'))).toEqual(NORMAL);
  });

  it('a person writing that a mail could not be delivered is not a bounce', async () => {
    expect(await classified(plainMessage({ subject: 'Mail delivery failed?' }, 'My mail could not be delivered to you, is the address right?\r\n'))).toEqual(NORMAL);
  });

  it('a person forwarding a bounce as an attachment is not a bounce', async () => {
    expect(await classified(forwardedBounce({ messageId: uniqueId('reply') }))).toEqual(NORMAL);
  });

  it('mail forwarded by an Exchange inbox rule (X-MS-Exchange-Inbox-Rules-Loop alone) is normal', async () => {
    expect(await classified(ruleForwardedMessage())).toEqual(NORMAL);
  });

  it.each([
    ['empty bytes', Buffer.alloc(0)],
    ['random bytes', Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 97 + 13) % 256))],
    ['a header block only', Buffer.from('Subject: hi\r\nX-Nothing: here')],
    ['an unterminated comment and quote', Buffer.from('Content-Type: multipart/mixed; boundary="b (x\r\nFrom: (a <b@\r\nReturn-Path: <\r\n\r\n--b')],
    ['a multipart nested past any sane depth', Buffer.from(`Content-Type: multipart/mixed; boundary=b\r\n\r\n${'--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n'.repeat(50)}`)],
  ])('never throws on %s, and calls it normal', (_, raw) => {
    expect(classify(raw, EMPTY)).toEqual(NORMAL);
  });

  it('works from the raw bytes when the parser gave nothing', () => {
    const raw = plainMessage({ from: 'MAILER-DAEMON@mx.example.org', subject: 'Undelivered' });
    expect(classify(raw, EMPTY)).toEqual({ class: 'bounce', reason: 'From: MAILER-DAEMON', originalMessageIds: [] });
  });
});
