import type { MessageClass } from '../parse/classify.js';
import { StoreError } from '../errors.js';
import type { Db } from './database.js';
import { readAttachmentContent, readMessageRaw } from './pieces.js';

/**
 * Read-only views of tickets for `mailpoll tickets` and `mailpoll attachments`. Rows are
 * snake_case; everything returned is camelCase, mapped here at the edge. Timestamps stay the ISO
 * 8601 UTC strings the store wrote.
 */

export type { MessageClass };

/** A mail address as stored: either part may be missing (a message that could not be parsed). */
export interface Person {
  name: string | null;
  address: string | null;
}

export interface TicketSummary {
  number: number;
  subject: string | null;
  status: string;
  requester: Person;
  /** The mailbox the first message came from. */
  mailbox: string;
  messageCount: number;
  createdAt: string;
  updatedAt: string;
  /** Its first message could not be parsed (the raw bytes are kept). */
  parseFailed: boolean;
}

export interface AttachmentInfo {
  id: number;
  filename: string | null;
  contentType: string;
  size: number;
  contentId: string | null;
  inline: boolean;
}

export interface ThreadMessage {
  id: number;
  mailbox: string;
  /** The Message-ID header, without angle brackets. */
  messageId: string | null;
  sender: Person;
  /** The Date header; null when missing or unreadable. */
  sentAt: string | null;
  /** When mailpoll stored it. */
  receivedAt: string;
  subject: string | null;
  class: MessageClass;
  parseError: string | null;
  /** Only the header block was stored (the message was over the size limit). */
  headersOnly: boolean;
  text: string | null;
  /** It has an HTML body (shown by no command, kept in messages.html_body). */
  hasHtml: boolean;
  attachments: AttachmentInfo[];
}

export interface TicketDetail extends TicketSummary {
  /** Oldest first. */
  messages: ThreadMessage[];
}

export interface TicketFilter {
  mailbox?: string | undefined;
  status?: string | undefined;
  /** Tickets updated at or after this time. */
  since?: Date | undefined;
}

interface TicketRow {
  number: number;
  subject: string | null;
  status: string;
  requester_name: string | null;
  requester_address: string | null;
  mailbox: string;
  message_count: number;
  created_at: string;
  updated_at: string;
  parse_failed: number;
}

const TICKET_COLUMNS =
  'number, subject, status, requester_name, requester_address, mailbox, message_count, created_at, updated_at, parse_failed';

const toTicket = (r: TicketRow): TicketSummary => ({
  number: r.number,
  subject: r.subject,
  status: r.status,
  requester: { name: r.requester_name, address: r.requester_address },
  mailbox: r.mailbox,
  messageCount: r.message_count,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  parseFailed: r.parse_failed !== 0,
});

/** Tickets matching `filter`, most recently updated first, at most `limit`. */
export function listTickets(db: Db, filter: TicketFilter & { limit: number }): TicketSummary[] {
  return db
    .prepare<[{ mailbox: string | null; status: string | null; since: string | null; limit: number }], TicketRow>(
      `SELECT ${TICKET_COLUMNS} FROM tickets
       WHERE (@mailbox IS NULL OR mailbox = @mailbox)
         AND (@status IS NULL OR status = @status)
         AND (@since IS NULL OR updated_at >= @since)
       ORDER BY updated_at DESC, number DESC
       LIMIT @limit`,
    )
    .all({ mailbox: filter.mailbox ?? null, status: filter.status ?? null, since: filter.since?.toISOString() ?? null, limit: filter.limit })
    .map(toTicket);
}

interface MessageRow {
  id: number;
  mailbox: string;
  message_id: string | null;
  from_name: string | null;
  from_address: string | null;
  sent_at: string | null;
  received_at: string;
  subject: string | null;
  class: string;
  parse_error: string | null;
  headers_only: number;
  text_body: string | null;
  has_html: number;
}

interface AttachmentRow {
  id: number;
  message_ref: number;
  filename: string | null;
  content_type: string;
  size: number;
  content_id: string | null;
  inline: number;
}

/** The ticket numbered `number` with its whole thread, or undefined when there is none. */
export function showTicket(db: Db, number: number): TicketDetail | undefined {
  const ticket = db.prepare<[number], TicketRow & { id: number }>(`SELECT id, ${TICKET_COLUMNS} FROM tickets WHERE number = ?`).get(number);
  if (ticket === undefined) return undefined;
  const messages = db
    .prepare<[number], MessageRow>(
      `SELECT id, mailbox, message_id, from_name, from_address, sent_at, received_at, subject, "class", parse_error,
         headers_only, text_body, html_body IS NOT NULL AS has_html
       FROM messages WHERE ticket_id = ? ORDER BY received_at, id`,
    )
    .all(ticket.id);
  const attachments = new Map<number, AttachmentInfo[]>();
  const rows = db
    .prepare<[number], AttachmentRow>(
      `SELECT a.id, a.message_ref, a.filename, a.content_type, a.size, a.content_id, a.inline
       FROM attachments a JOIN messages m ON m.id = a.message_ref
       WHERE m.ticket_id = ? ORDER BY a.id`,
    )
    .all(ticket.id);
  for (const a of rows) {
    const list = attachments.get(a.message_ref) ?? [];
    list.push({ id: a.id, filename: a.filename, contentType: a.content_type, size: a.size, contentId: a.content_id, inline: a.inline !== 0 });
    attachments.set(a.message_ref, list);
  }
  return {
    ...toTicket(ticket),
    messages: messages.map((m) => ({
      id: m.id,
      mailbox: m.mailbox,
      messageId: m.message_id,
      sender: { name: m.from_name, address: m.from_address },
      sentAt: m.sent_at,
      receivedAt: m.received_at,
      subject: m.subject,
      class: m.class as MessageClass,
      parseError: m.parse_error,
      headersOnly: m.headers_only !== 0,
      text: m.text_body,
      hasHtml: m.has_html !== 0,
      attachments: attachments.get(m.id) ?? [],
    })),
  };
}

export interface AttachmentContent {
  /** As the sender named it: never use it as a path without `safeFilename`. */
  filename: string | null;
  contentType: string;
  content: Buffer;
}

/**
 * One attachment's bytes (stored once per content hash, a large one in pieces that are put back
 * together here), or undefined for an unknown id.
 */
export function attachmentContent(db: Db, attachmentId: number): AttachmentContent | undefined {
  const row = db
    .prepare<[number], { filename: string | null; content_type: string; sha256: string }>(
      'SELECT filename, content_type, sha256 FROM attachments WHERE id = ?',
    )
    .get(attachmentId);
  if (row === undefined) return undefined;
  const content = readAttachmentContent(db, row.sha256);
  if (content === undefined) throw new StoreError(`attachment ${attachmentId} is damaged: its content ${row.sha256} is missing`);
  return { filename: row.filename, contentType: row.content_type, content };
}

/**
 * The exact bytes the server served for message `id` (messages.id, as `tickets show` lists it),
 * whether stored whole or in pieces, or undefined for an unknown id.
 */
export function messageRaw(db: Db, id: number): Buffer | undefined {
  return readMessageRaw(db, id);
}

/**
 * One row per stored message, with its ticket's number, status and subject repeated on each.
 * Per message rather than per ticket because that is the shape other tools aggregate from (a
 * spreadsheet pivots it into tickets, a script counts replies or response times per ticket), and
 * nothing is lost: a per-ticket export cannot be turned back into the thread. Every value is flat
 * (string, number, boolean or null) so the same row serves JSON Lines and CSV.
 */
export interface ExportRow {
  /** null for a message stored without a ticket. */
  ticket: number | null;
  ticketStatus: string | null;
  ticketSubject: string | null;
  /** messages.id: stable, and what `tickets show` lists. */
  message: number;
  messageId: string | null;
  mailbox: string;
  receivedAt: string;
  sentAt: string | null;
  fromName: string | null;
  fromAddress: string | null;
  /** Addresses only, joined with ", ". */
  to: string;
  cc: string;
  subject: string | null;
  class: MessageClass;
  parseError: string | null;
  headersOnly: boolean;
  attachments: number;
  text: string | null;
}

/** The columns of {@link ExportRow}, in the order exports write them (the CSV header). */
export const EXPORT_COLUMNS = [
  'ticket', 'ticketStatus', 'ticketSubject', 'message', 'messageId', 'mailbox', 'receivedAt', 'sentAt', 'fromName',
  'fromAddress', 'to', 'cc', 'subject', 'class', 'parseError', 'headersOnly', 'attachments', 'text',
] as const satisfies readonly (keyof ExportRow)[];

export interface ExportFilter {
  /** The mailbox the message came from. */
  mailbox?: string | undefined;
  /** The ticket's status (messages without a ticket never match). */
  status?: string | undefined;
  /** Messages stored at or after this time. */
  since?: Date | undefined;
}

interface ExportDbRow {
  ticket: number | null;
  ticket_status: string | null;
  ticket_subject: string | null;
  id: number;
  message_id: string | null;
  mailbox: string;
  received_at: string;
  sent_at: string | null;
  from_name: string | null;
  from_address: string | null;
  to_addresses: string | null;
  cc_addresses: string | null;
  subject: string | null;
  class: string;
  parse_error: string | null;
  headers_only: number;
  attachments: number;
  text_body: string | null;
}

/**
 * Streams the export, ticket by ticket, each thread oldest first; messages stored without a ticket
 * come last. Rows are read lazily: the connection is busy until the iterator finishes or returns.
 */
export function* exportTickets(db: Db, filter: ExportFilter = {}): Generator<ExportRow, void, undefined> {
  const rows = db
    .prepare<[{ mailbox: string | null; status: string | null; since: string | null }], ExportDbRow>(
      `SELECT t.number AS ticket, t.status AS ticket_status, t.subject AS ticket_subject, m.id, m.message_id, m.mailbox,
         m.received_at, m.sent_at, m.from_name, m.from_address, m.to_addresses, m.cc_addresses, m.subject, m."class",
         m.parse_error, m.headers_only, m.text_body,
         (SELECT COUNT(*) FROM attachments a WHERE a.message_ref = m.id) AS attachments
       FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id
       WHERE (@mailbox IS NULL OR m.mailbox = @mailbox)
         AND (@status IS NULL OR t.status = @status)
         AND (@since IS NULL OR m.received_at >= @since)
       ORDER BY t.number IS NULL, t.number, m.received_at, m.id`,
    )
    .iterate({ mailbox: filter.mailbox ?? null, status: filter.status ?? null, since: filter.since?.toISOString() ?? null });
  for (const r of rows) {
    yield {
      ticket: r.ticket,
      ticketStatus: r.ticket_status,
      ticketSubject: r.ticket_subject,
      message: r.id,
      messageId: r.message_id,
      mailbox: r.mailbox,
      receivedAt: r.received_at,
      sentAt: r.sent_at,
      fromName: r.from_name,
      fromAddress: r.from_address,
      to: addressList(r.to_addresses),
      cc: addressList(r.cc_addresses),
      subject: r.subject,
      class: r.class as MessageClass,
      parseError: r.parse_error,
      headersOnly: r.headers_only !== 0,
      attachments: r.attachments,
      text: r.text_body,
    };
  }
}

/** `[{name, address}]` JSON as the store writes it -> "a@x, b@y". */
function addressList(json: string | null): string {
  if (json === null) return '';
  try {
    const list = JSON.parse(json) as unknown;
    if (!Array.isArray(list)) return '';
    return list
      .map((a: unknown) => (typeof a === 'object' && a !== null && typeof (a as { address?: unknown }).address === 'string' ? (a as { address: string }).address : ''))
      .filter((a) => a !== '')
      .join(', ');
  } catch {
    return '';
  }
}
