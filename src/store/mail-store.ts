import { open } from 'node:fs/promises';
import type { Classification } from '../parse/classify.js';
import { dedupeHash, sha256 } from '../parse/raw-headers.js';
import { syntheticMessageId } from '../parse/synthetic-id.js';
import type { ParsedMessage } from '../parse/types.js';
import type { Cursor } from '../sources/mail-source.js';
import { assignTicket, type TicketPolicy } from '../tickets/assign.js';
import { loopVerdict } from '../tickets/loop-guard.js';
import { displaySubject } from '../tickets/subject.js';
import { chooseTicket, parentCandidates } from '../tickets/threading.js';
import type { Db } from './database.js';
import { pieceCount, PieceWriter, PIECE_THRESHOLD, wholeColumn } from './pieces.js';

/** Ticket rules that are the same for every mailbox. */
export interface StoreRules {
  /** Ticket numbers named by the subject's token, e.g. `[#1001]`. */
  ticketToken: (subject: string | undefined) => number[];
  /** More than `max` tickets opened by one sender within `windowMs` flags a probable mail loop. */
  loopGuard: { max: number; windowMs: number };
}

export const DEFAULT_RULES: StoreRules = {
  ticketToken: () => [],
  loopGuard: { max: 10, windowMs: 3_600_000 },
};

const NORMAL: Classification = { class: 'normal', reason: '', originalMessageIds: [] };

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
  /** The message's class; normal when absent. */
  classification?: Classification;
  /** What auto-replies and bounces may do to tickets in this mailbox. */
  policy?: TicketPolicy;
  /**
   * Only the header block of an oversize message: stored and marked, and never acted on at the
   * server (its body exists nowhere else).
   */
  headersOnly?: boolean;
  /** Computed with the analysis (possibly on a worker thread); computed here when absent. */
  dedupeHash?: string;
  rawSha256?: string;
}

export type IngestResult =
  | { outcome: 'stored'; ticketNumber: number | undefined; newTicket: boolean; probableLoop: boolean }
  | { outcome: 'duplicate'; ticketNumber: number | undefined }
  | { outcome: 'known' };

const now = () => new Date().toISOString();
const json = (v: unknown) => JSON.stringify(v);

/**
 * Everything the fetch loop writes or reads, each write one transaction. The ingest transaction
 * is step 3 of the exactly-once protocol: message, ticket, attachments, receipt and cursor commit
 * together or not at all, the pieces of a large message or attachment (pieces.ts) included.
 */
export class MailStore {
  private readonly s;
  private readonly pieces: PieceWriter;
  /** The write-ahead log, when the database has one (WAL mode on a file). */
  readonly walFile: string | undefined;

  constructor(
    private readonly db: Db,
    private readonly rules: StoreRules = DEFAULT_RULES,
  ) {
    this.pieces = new PieceWriter(db);
    this.walFile = !db.memory && String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal' ? `${db.name}-wal` : undefined;
    this.s = {
      cursor: db.prepare<[string], { uid_validity: string | null; last_uid: number | null }>(
        'SELECT uid_validity, last_uid FROM mailbox_state WHERE mailbox = ?',
      ),
      known: db.prepare<[string, string], { server_id: string }>(
        'SELECT server_id FROM receipts WHERE mailbox = ? AND server_id IN (SELECT value FROM json_each(?))',
      ),
      receipt: db.prepare<[string, string], { outcome: string }>('SELECT outcome FROM receipts WHERE mailbox = ? AND server_id = ?'),
      receiptIds: db.prepare<[string, number], string>('SELECT server_id FROM receipts WHERE mailbox = ? LIMIT ?').pluck(),
      unacknowledged: db.prepare<[string], { server_id: string }>(
        'SELECT server_id FROM receipts WHERE mailbox = ? AND acknowledged_at IS NULL ORDER BY fetched_at, server_id',
      ),
      acknowledge: db.prepare<[string, string, string]>(
        'UPDATE receipts SET acknowledged_at = ? WHERE mailbox = ? AND server_id = ? AND acknowledged_at IS NULL',
      ),
      byHash: db.prepare<[string], { id: number; ticket_id: number | null }>('SELECT id, ticket_id FROM messages WHERE dedupe_hash = ?'),
      ticketOfMessageId: db.prepare<[string], { ticket_id: number }>(
        'SELECT ticket_id FROM messages WHERE message_id = ? AND ticket_id IS NOT NULL ORDER BY id LIMIT 1',
      ),
      ticketByNumber: db.prepare<[number], { id: number }>('SELECT id FROM tickets WHERE number = ?'),
      openedBy: db.prepare<[string, string], { created_at: string }>(
        'SELECT created_at FROM tickets WHERE requester_address = ? AND created_at >= ?',
      ),
      ticketNumber: db.prepare<[number], { number: number }>('SELECT number FROM tickets WHERE id = ?'),
      nextNumber: db.prepare<[], { n: number }>('SELECT COALESCE(MAX(number), 1000) + 1 AS n FROM tickets'),
      insertTicket: db.prepare(
        `INSERT INTO tickets (number, subject, requester_address, requester_name, mailbox, parse_failed, probable_loop, message_count, created_at, updated_at)
         VALUES (@number, @subject, @requesterAddress, @requesterName, @mailbox, @parseFailed, @probableLoop, 1, @at, @at)`,
      ),
      touchTicket: db.prepare<[string, number]>('UPDATE tickets SET message_count = message_count + 1, updated_at = ? WHERE id = ?'),
      insertMessage: db.prepare(
        `INSERT INTO messages (ticket_id, mailbox, message_id, in_reply_to, references_ids, subject, from_address, from_name,
           reply_to, to_addresses, cc_addresses, sent_at, received_at, text_body, html_body, raw, raw_pieces, raw_size, raw_sha256,
           dedupe_hash, parse_error, headers_only, class, class_reason, message_id_synthetic)
         VALUES (@ticketId, @mailbox, @messageId, @inReplyTo, @references, @subject, @fromAddress, @fromName,
           @replyTo, @to, @cc, @sentAt, @receivedAt, @text, @html, @raw, @rawPieces, @rawSize, @rawSha256, @dedupeHash, @parseError, @headersOnly, @class, @classReason, @synthetic)`,
      ),
      // OR IGNORE: a content already stored (by hash) is stored once; its pieces are written only
      // when this insert added the row.
      insertContent: db.prepare<[string, number, Buffer, number]>(
        'INSERT OR IGNORE INTO attachment_contents (sha256, size, content, pieces) VALUES (?, ?, ?, ?)',
      ),
      insertAttachment: db.prepare(
        `INSERT INTO attachments (message_ref, filename, content_type, size, content_id, inline, sha256)
         VALUES (@messageRef, @filename, @contentType, @size, @contentId, @inline, @sha256)`,
      ),
      insertReceipt: db.prepare(
        `INSERT INTO receipts (mailbox, server_id, message_ref, outcome, fetched_at, acknowledged_at)
         VALUES (@mailbox, @serverId, @messageRef, @outcome, @at, @acknowledgedAt)`,
      ),
      knownListing: db.prepare<[string], string | null>('SELECT known_listing_sha256 FROM mailbox_state WHERE mailbox = ?').pluck(),
      rememberKnownListing: db.prepare<[string, string]>(
        `INSERT INTO mailbox_state (mailbox, known_listing_sha256) VALUES (?, ?)
         ON CONFLICT (mailbox) DO UPDATE SET known_listing_sha256 = excluded.known_listing_sha256`,
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

  /**
   * Puts every commit made so far on disk: an fsync of the WAL, on libuv's thread pool, so the
   * thread that reads the network and writes SQLite does not wait for the disk. A fetch run commits
   * with synchronous=NORMAL (run-fetch.ts), written but not yet synced; the poll calls this before
   * it acts on any message at the server. fsync covers the file, whichever descriptor asks; the WAL
   * exists while a connection is open. Without a WAL (a memory database) commits need nothing more.
   */
  async syncWal(): Promise<void> {
    if (this.walFile === undefined) return;
    const handle = await open(this.walFile, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** The SHA-256 of this mailbox's last UIDL listing whose every id had a receipt (see migration 007). */
  knownListing(mailbox: string): string | undefined {
    return this.s.knownListing.get(mailbox) ?? undefined;
  }

  rememberKnownListing(mailbox: string, sha256: string): void {
    this.s.rememberKnownListing.run(mailbox, sha256);
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

  /**
   * The subset of `serverIds` this mailbox already has a receipt for.
   *
   * A POP3 maildrop that keeps its mail is listed whole on every poll, so the question grows with
   * the mailbox's history. For a long list, one scan of the mailbox's receipts (the primary key
   * starts with the mailbox, so it reads only this mailbox's rows, one string column each) and a
   * lookup in memory costs a fraction of one index search per id. The scan is capped at a few times
   * the list: a mailbox with many more receipts than listed ids (`after: delete` keeps the receipts
   * of deleted mail) is asked id by id instead.
   */
  knownServerIds(mailbox: string, serverIds: readonly string[]): Set<string> {
    const SCAN_FROM = 64;
    const SCAN_FACTOR = 4;
    if (serverIds.length >= SCAN_FROM) {
      const cap = serverIds.length * SCAN_FACTOR;
      const receipts = this.s.receiptIds.all(mailbox, cap + 1);
      if (receipts.length <= cap) {
        const asked = new Set(serverIds);
        let hits = 0;
        for (const id of receipts) if (asked.has(id)) hits += 1;
        // Every listed id has a receipt (the usual poll that finds nothing new): that is the answer.
        if (hits === asked.size) return asked;
        const known = new Set<string>();
        for (const id of receipts) if (asked.has(id)) known.add(id);
        return known;
      }
    }
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
   * The raw bytes are kept when the fetch itself worked, so a quarantined message keeps them;
   * not those of a message too large to bind whole (see pieces.ts), which would cost three times
   * its size at the moment something already failed. It is still on the server either way.
   */
  recordMessageFailure(mailbox: string, serverId: string, error: string, raw: Buffer | undefined): number {
    const at = now();
    const kept = raw !== undefined && raw.length <= PIECE_THRESHOLD ? raw : null;
    const row = this.db
      .prepare<[string, string, string, string, string, Buffer | null], { attempts: number }>(
        `INSERT INTO message_failures (mailbox, server_id, attempts, last_error, first_failed_at, last_failed_at, raw)
         VALUES (?, ?, 1, ?, ?, ?, ?)
         ON CONFLICT (mailbox, server_id) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error,
           last_failed_at = excluded.last_failed_at, raw = COALESCE(excluded.raw, raw)
         RETURNING attempts`,
      )
      .get(mailbox, serverId, error, at, at, kept);
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

  /** Runs `fn` in one IMMEDIATE transaction; the ingests inside become savepoints of it. */
  batch<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
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

      const hash = input.dedupeHash ?? dedupeHash(raw);
      const existing = this.s.byHash.get(hash);
      if (existing) {
        this.s.insertReceipt.run({ mailbox, serverId, messageRef: existing.id, outcome: 'duplicate', at, acknowledgedAt });
        advance();
        const ticketNumber = existing.ticket_id === null ? undefined : this.s.ticketNumber.get(existing.ticket_id)?.number;
        return { outcome: 'duplicate', ticketNumber };
      }

      const classification = input.classification ?? NORMAL;
      const ticketOf = (id: string) => this.s.ticketOfMessageId.get(id)?.ticket_id;
      const assignment = assignTicket(
        classification.class,
        {
          byReference: chooseTicket(parentCandidates(parsed), ticketOf),
          byToken: this.rules.ticketToken(parsed.subject).map((n) => this.s.ticketByNumber.get(n)?.id).find((id) => id !== undefined),
          byBouncedOriginal: chooseTicket(classification.originalMessageIds, ticketOf),
        },
        input.policy ?? { autoReplies: 'thread', bounces: 'thread' },
      );
      let ticketId: number | null = null;
      let probableLoop = false;
      if (assignment.action === 'thread') {
        ticketId = assignment.ticketId;
        this.s.touchTicket.run(at, ticketId);
      } else if (assignment.action === 'open') {
        const sender = parsed.from?.address;
        if (sender !== undefined) {
          const { max, windowMs } = this.rules.loopGuard;
          const since = new Date(Date.parse(at) - windowMs).toISOString();
          const opened = this.s.openedBy.all(sender, since).map((r) => new Date(r.created_at));
          probableLoop = loopVerdict(opened, new Date(at), windowMs, max).loop;
        }
        ticketId = Number(
          this.s.insertTicket.run({
            number: this.s.nextNumber.get()?.n ?? 1001,
            subject: displaySubject(parsed.subject) || (parsed.subject ?? null),
            requesterAddress: sender ?? null,
            requesterName: parsed.from?.name || null,
            mailbox,
            parseFailed: parsed.parseError === undefined ? 0 : 1,
            probableLoop: probableLoop ? 1 : 0,
            at,
          }).lastInsertRowid,
        );
      }
      const newTicket = assignment.action === 'open';
      const messageId = parsed.messageId ?? syntheticMessageId(raw);

      const messageRef = Number(
        this.s.insertMessage.run({
          ticketId,
          mailbox,
          messageId,
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
          raw: wholeColumn(raw),
          rawPieces: pieceCount(raw.length),
          rawSize: raw.length,
          rawSha256: input.rawSha256 ?? sha256(raw),
          dedupeHash: hash,
          parseError: parsed.parseError ?? null,
          headersOnly: headersOnly ? 1 : 0,
          class: classification.class,
          classReason: classification.reason,
          synthetic: parsed.messageId === undefined ? 1 : 0,
        }).lastInsertRowid,
      );
      this.pieces.messageRaw(messageRef, raw);
      for (const a of parsed.attachments) {
        const digest = a.sha256 ?? sha256(a.content);
        const added = this.s.insertContent.run(digest, a.content.length, wholeColumn(a.content), pieceCount(a.content.length)).changes > 0;
        if (added) this.pieces.attachmentContent(digest, a.content);
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
      const ticketNumber = ticketId === null ? undefined : this.s.ticketNumber.get(ticketId)?.number;
      return { outcome: 'stored', ticketNumber, newTicket, probableLoop };
    }).immediate();
  }
}
