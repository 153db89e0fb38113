import type { ParsedMessage } from '../parse/types.js';
import { dedupeHash, sha256 } from '../parse/raw-headers.js';
import type { Cursor } from '../sources/mail-source.js';
import { chooseTicket, parentCandidates } from '../tickets/threading.js';
import type { Db } from './database.js';

export interface IngestInput {
  mailbox: string;
  serverId: string;
  /** IMAP only: advances the cursor in the same transaction. */
  uid: number | undefined;
  uidValidity: string;
  raw: Buffer;
  parsed: ParsedMessage;
  /** True when the post-fetch action is `keep`: nothing is owed to the server. */
  acknowledged: boolean;
  /**
   * Only the header block of an oversize message: stored and marked, and never acted on at the
   * server (its body exists nowhere else).
   */
  headersOnly?: boolean;
}

export type IngestResult =
  | { outcome: 'stored'; ticketNumber: number; newTicket: boolean }
  | { outcome: 'duplicate'; ticketNumber: number }
  | { outcome: 'known' };

const now = () => new Date().toISOString();
const json = (v: unknown) => JSON.stringify(v);

/**
 * Everything the fetch loop writes or reads, each write one transaction. The ingest transaction
 * is step 3 of the exactly-once protocol: message, ticket, attachments, receipt and cursor commit
 * together or not at all.
 */
export class MailStore {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      cursor: db.prepare<[string], { uid_validity: string | null; last_uid: number | null }>(
        'SELECT uid_validity, last_uid FROM mailbox_state WHERE mailbox = ?',
      ),
      known: db.prepare<[string, string], { server_id: string }>(
        'SELECT server_id FROM receipts WHERE mailbox = ? AND server_id IN (SELECT value FROM json_each(?))',
      ),
      receipt: db.prepare<[string, string], { outcome: string }>('SELECT outcome FROM receipts WHERE mailbox = ? AND server_id = ?'),
      unacknowledged: db.prepare<[string], { server_id: string }>(
        'SELECT server_id FROM receipts WHERE mailbox = ? AND acknowledged_at IS NULL ORDER BY fetched_at, server_id',
      ),
      acknowledge: db.prepare<[string, string, string]>(
        'UPDATE receipts SET acknowledged_at = ? WHERE mailbox = ? AND server_id = ? AND acknowledged_at IS NULL',
      ),
      byHash: db.prepare<[string], { id: number; ticket_id: number }>('SELECT id, ticket_id FROM messages WHERE dedupe_hash = ?'),
      ticketOfMessageId: db.prepare<[string], { ticket_id: number }>(
        'SELECT ticket_id FROM messages WHERE message_id = ? ORDER BY id LIMIT 1',
      ),
      ticketNumber: db.prepare<[number], { number: number }>('SELECT number FROM tickets WHERE id = ?'),
      nextNumber: db.prepare<[], { n: number }>('SELECT COALESCE(MAX(number), 1000) + 1 AS n FROM tickets'),
      insertTicket: db.prepare(
        `INSERT INTO tickets (number, subject, requester_address, requester_name, mailbox, parse_failed, message_count, created_at, updated_at)
         VALUES (@number, @subject, @requesterAddress, @requesterName, @mailbox, @parseFailed, 1, @at, @at)`,
      ),
      touchTicket: db.prepare<[string, number]>('UPDATE tickets SET message_count = message_count + 1, updated_at = ? WHERE id = ?'),
      insertMessage: db.prepare(
        `INSERT INTO messages (ticket_id, mailbox, message_id, in_reply_to, references_ids, subject, from_address, from_name,
           reply_to, to_addresses, cc_addresses, sent_at, received_at, text_body, html_body, raw, raw_size, raw_sha256,
           dedupe_hash, parse_error, headers_only)
         VALUES (@ticketId, @mailbox, @messageId, @inReplyTo, @references, @subject, @fromAddress, @fromName,
           @replyTo, @to, @cc, @sentAt, @receivedAt, @text, @html, @raw, @rawSize, @rawSha256, @dedupeHash, @parseError, @headersOnly)`,
      ),
      insertContent: db.prepare<[string, number, Buffer]>(
        'INSERT OR IGNORE INTO attachment_contents (sha256, size, content) VALUES (?, ?, ?)',
      ),
      insertAttachment: db.prepare(
        `INSERT INTO attachments (message_ref, filename, content_type, size, content_id, inline, sha256)
         VALUES (@messageRef, @filename, @contentType, @size, @contentId, @inline, @sha256)`,
      ),
      insertReceipt: db.prepare(
        `INSERT INTO receipts (mailbox, server_id, message_ref, outcome, fetched_at, acknowledged_at)
         VALUES (@mailbox, @serverId, @messageRef, @outcome, @at, @acknowledgedAt)`,
      ),
      advanceCursor: db.prepare<[string, string, number]>(
        `INSERT INTO mailbox_state (mailbox, uid_validity, last_uid) VALUES (?, ?, ?)
         ON CONFLICT (mailbox) DO UPDATE SET
           last_uid = CASE WHEN uid_validity IS excluded.uid_validity THEN MAX(COALESCE(last_uid, 0), excluded.last_uid)
                           ELSE excluded.last_uid END,
           uid_validity = excluded.uid_validity`,
      ),
    };
  }

  /** Where the last run stopped in this IMAP folder, or null if it never ran. */
  cursor(mailbox: string): Cursor | null {
    const row = this.s.cursor.get(mailbox);
    if (!row || row.uid_validity === null || row.last_uid === null) return null;
    return { uidValidity: row.uid_validity, lastUid: row.last_uid };
  }

  advanceCursor(mailbox: string, uidValidity: string, uid: number): void {
    this.s.advanceCursor.run(mailbox, uidValidity, uid);
  }

  /** The subset of `serverIds` this mailbox already has a receipt for. */
  knownServerIds(mailbox: string, serverIds: readonly string[]): Set<string> {
    const known = new Set<string>();
    const CHUNK = 5000;
    for (let i = 0; i < serverIds.length; i += CHUNK) {
      for (const row of this.s.known.all(mailbox, json(serverIds.slice(i, i + CHUNK)))) known.add(row.server_id);
    }
    return known;
  }

  /** Receipts whose post-fetch action is still owed to the server (a crash came between). */
  unacknowledged(mailbox: string): string[] {
    return this.s.unacknowledged.all(mailbox).map((r) => r.server_id);
  }

  markAcknowledged(mailbox: string, serverIds: readonly string[]): void {
    const at = now();
    this.db.transaction(() => {
      for (const id of serverIds) this.s.acknowledge.run(at, mailbox, id);
    }).immediate();
  }

  /** Notes a message left on the server because it is over maxMessageBytes, so it is reported once. */
  recordOversize(mailbox: string, serverId: string, uid: number | undefined, uidValidity: string): void {
    this.db.transaction(() => {
      if (this.s.receipt.get(mailbox, serverId)) return;
      this.s.insertReceipt.run({ mailbox, serverId, messageRef: null, outcome: 'oversize', at: now(), acknowledgedAt: now() });
      if (uid !== undefined) this.s.advanceCursor.run(mailbox, uidValidity, uid);
    }).immediate();
  }

  /**
   * Counts a failed attempt at one message (fetch or store) and returns the attempts so far.
   * The raw bytes are kept when the fetch itself worked, so a quarantined message keeps them.
   */
  recordMessageFailure(mailbox: string, serverId: string, error: string, raw: Buffer | undefined): number {
    const at = now();
    const row = this.db
      .prepare<[string, string, string, string, string, Buffer | null], { attempts: number }>(
        `INSERT INTO message_failures (mailbox, server_id, attempts, last_error, first_failed_at, last_failed_at, raw)
         VALUES (?, ?, 1, ?, ?, ?, ?)
         ON CONFLICT (mailbox, server_id) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error,
           last_failed_at = excluded.last_failed_at, raw = COALESCE(excluded.raw, raw)
         RETURNING attempts`,
      )
      .get(mailbox, serverId, error, at, at, raw ?? null);
    return row?.attempts ?? 1;
  }

  /**
   * Gives up on a message after its attempts: it stays on the server untouched, its receipt says
   * 'quarantined' so no later run trips over it again, and `status` lists it.
   */
  quarantine(mailbox: string, serverId: string, uid: number | undefined, uidValidity: string): void {
    this.db.transaction(() => {
      const at = now();
      this.db.prepare('UPDATE message_failures SET quarantined_at = ? WHERE mailbox = ? AND server_id = ?').run(at, mailbox, serverId);
      if (!this.s.receipt.get(mailbox, serverId)) {
        this.s.insertReceipt.run({ mailbox, serverId, messageRef: null, outcome: 'quarantined', at, acknowledgedAt: at });
      }
      if (uid !== undefined) this.s.advanceCursor.run(mailbox, uidValidity, uid);
    }).immediate();
  }

  /** Step 3 of the protocol, in one IMMEDIATE transaction (the write lock is taken up front). */
  ingest(input: IngestInput): IngestResult {
    return this.db.transaction((): IngestResult => {
      const { mailbox, serverId, raw, parsed } = input;
      if (this.s.receipt.get(mailbox, serverId)) return { outcome: 'known' };
      const at = now();
      const headersOnly = input.headersOnly === true;
      const acknowledgedAt = input.acknowledged || headersOnly ? at : null;
      const advance = () => {
        if (input.uid !== undefined) this.s.advanceCursor.run(mailbox, input.uidValidity, input.uid);
      };

      const hash = dedupeHash(raw);
      const existing = this.s.byHash.get(hash);
      if (existing) {
        this.s.insertReceipt.run({ mailbox, serverId, messageRef: existing.id, outcome: 'duplicate', at, acknowledgedAt });
        advance();
        return { outcome: 'duplicate', ticketNumber: this.s.ticketNumber.get(existing.ticket_id)?.number ?? 0 };
      }

      let ticketId = chooseTicket(parentCandidates(parsed), (id) => this.s.ticketOfMessageId.get(id)?.ticket_id);
      const newTicket = ticketId === undefined;
      if (ticketId === undefined) {
        const number = this.s.nextNumber.get()?.n ?? 1001;
        ticketId = Number(
          this.s.insertTicket.run({
            number,
            subject: parsed.subject ?? null,
            requesterAddress: parsed.from?.address ?? null,
            requesterName: parsed.from?.name || null,
            mailbox,
            parseFailed: parsed.parseError === undefined ? 0 : 1,
            at,
          }).lastInsertRowid,
        );
      } else {
        this.s.touchTicket.run(at, ticketId);
      }

      const messageRef = Number(
        this.s.insertMessage.run({
          ticketId,
          mailbox,
          messageId: parsed.messageId ?? null,
          inReplyTo: parsed.inReplyTo ?? null,
          references: parsed.references.length > 0 ? json(parsed.references) : null,
          subject: parsed.subject ?? null,
          fromAddress: parsed.from?.address ?? null,
          fromName: parsed.from?.name || null,
          replyTo: json(parsed.replyTo),
          to: json(parsed.to),
          cc: json(parsed.cc),
          sentAt: parsed.date?.toISOString() ?? null,
          receivedAt: at,
          text: parsed.text ?? null,
          html: parsed.html ?? null,
          raw,
          rawSize: raw.length,
          rawSha256: sha256(raw),
          dedupeHash: hash,
          parseError: parsed.parseError ?? null,
          headersOnly: headersOnly ? 1 : 0,
        }).lastInsertRowid,
      );
      for (const a of parsed.attachments) {
        const digest = sha256(a.content);
        this.s.insertContent.run(digest, a.content.length, a.content);
        this.s.insertAttachment.run({
          messageRef,
          filename: a.filename ?? null,
          contentType: a.contentType,
          size: a.content.length,
          contentId: a.contentId ?? null,
          inline: a.inline ? 1 : 0,
          sha256: digest,
        });
      }
      this.s.insertReceipt.run({ mailbox, serverId, messageRef, outcome: headersOnly ? 'headers-only' : 'stored', at, acknowledgedAt });
      advance();
      return { outcome: 'stored', ticketNumber: this.s.ticketNumber.get(ticketId)?.number ?? 0, newTicket };
    }).immediate();
  }
}
