import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { ParsedAttachment, ParsedMessage } from '../../src/parse/types.js';
import { migrate, openDatabase, type Db } from '../../src/store/database.js';
import { MailStore } from '../../src/store/mail-store.js';
import { pieceCount, PIECE_BYTES, PIECE_THRESHOLD, readAttachmentContent, readMessageRaw } from '../../src/store/pieces.js';
import { attachmentContent, messageRaw } from '../../src/store/ticket-queries.js';

/**
 * Large blobs are written in pieces (migration 006) and read back whole. The parser is left out:
 * the parsed message is made here, so sizes can be exact and the bytes random (a piece out of
 * order or a byte lost shows).
 */

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function fresh(): { db: Db; store: MailStore } {
  const db = openDatabase(':memory:');
  return { db, store: new MailStore(db) };
}

let serial = 0;

/** A header block and random body bytes, exactly `size` bytes long. */
function rawOfSize(size: number): Buffer {
  serial += 1;
  const head = Buffer.from(`Message-ID: <piece-${serial}-${process.pid}@test.mailpoll>\r\nSubject: size ${size}\r\n\r\n`);
  if (size < head.length) throw new Error(`${size} bytes is too small for a message`);
  return Buffer.concat([head, randomBytes(size - head.length)]);
}

function parsedWith(attachments: Buffer[], messageId?: string): ParsedMessage {
  return {
    messageId, inReplyTo: undefined, references: [], subject: 'pieces', from: { name: '', address: 'alice@example.org' },
    replyTo: [], to: [], cc: [], date: undefined, text: 'see attached', html: undefined, parseError: undefined,
    attachments: attachments.map((content, i): ParsedAttachment => ({
      filename: `file-${i}.bin`, contentType: 'application/octet-stream', size: content.length, contentId: undefined, inline: false, content,
    })),
  };
}

function ingest(store: MailStore, raw: Buffer, serverId: string, attachments: Buffer[] = []) {
  return store.ingest({ mailbox: 'support', serverId, uid: undefined, uidValidity: '', raw, parsed: parsedWith(attachments), acknowledged: true });
}

const count = (db: Db, sql: string, ...params: unknown[]) => (db.prepare(sql).get(...params) as { n: number }).n;

/** At and around the threshold and the piece size, and a few pieces with a short last one. */
const SIZES = [
  PIECE_THRESHOLD - 1,
  PIECE_THRESHOLD,
  PIECE_THRESHOLD + 1,
  PIECE_THRESHOLD + PIECE_BYTES - 1,
  PIECE_THRESHOLD + PIECE_BYTES,
  PIECE_THRESHOLD + PIECE_BYTES + 1,
  6 * PIECE_BYTES + 12_345,
];

describe('pieceCount', () => {
  it('is 0 (stored whole) up to the threshold, then one piece per started PIECE_BYTES', () => {
    expect(pieceCount(0)).toBe(0);
    expect(pieceCount(PIECE_THRESHOLD)).toBe(0);
    expect(pieceCount(PIECE_THRESHOLD + 1)).toBe(PIECE_THRESHOLD / PIECE_BYTES + 1);
    expect(pieceCount(PIECE_THRESHOLD + PIECE_BYTES)).toBe(PIECE_THRESHOLD / PIECE_BYTES + 1);
  });
});

describe('raw messages in pieces', () => {
  it.each(SIZES)('stores and reads back %i bytes exactly, with size and hash of the whole message', (size) => {
    const { db, store } = fresh();
    const raw = rawOfSize(size);
    expect(ingest(store, raw, 's1').outcome).toBe('stored');
    const row = db.prepare('SELECT id, length(raw) AS whole, raw_pieces, raw_size, raw_sha256 FROM messages').get() as Record<string, number | string>;
    const pieces = pieceCount(size);
    expect(row).toMatchObject({ whole: pieces === 0 ? size : 0, raw_pieces: pieces, raw_size: size, raw_sha256: sha256(raw) });
    expect(count(db, 'SELECT COUNT(*) AS n FROM message_raw_pieces')).toBe(pieces);
    if (pieces > 0) {
      // Every piece is full but the last: no row holds more than PIECE_BYTES.
      expect(count(db, 'SELECT MAX(length(data)) AS n FROM message_raw_pieces')).toBe(PIECE_BYTES);
    }
    const id = row.id as number;
    expect(readMessageRaw(db, id)?.equals(raw)).toBe(true);
    expect(messageRaw(db, id)?.equals(raw)).toBe(true);
    // The view the README's sqlite3 recipes use.
    const viewed = db.prepare('SELECT raw, raw_size FROM message_raw WHERE id = ?').get(id) as { raw: Buffer; raw_size: number };
    expect(viewed.raw_size).toBe(size);
    expect(Buffer.isBuffer(viewed.raw) && viewed.raw.equals(raw)).toBe(true);
  });

  it('reads an unknown message id as undefined', () => {
    const { db } = fresh();
    expect(messageRaw(db, 42)).toBeUndefined();
  });

  it('still recognises a duplicate of a large message by its content and writes no second copy', () => {
    const { db, store } = fresh();
    const raw = rawOfSize(PIECE_THRESHOLD + 3 * PIECE_BYTES);
    expect(ingest(store, raw, 'a').outcome).toBe('stored');
    expect(ingest(store, Buffer.from(raw), 'b').outcome).toBe('duplicate');
    expect(count(db, 'SELECT COUNT(*) AS n FROM messages')).toBe(1);
    expect(count(db, 'SELECT COUNT(*) AS n FROM message_raw_pieces')).toBe(pieceCount(raw.length));
  });

  it('writes the pieces in the ingest transaction: a rolled-back batch leaves none behind', () => {
    const { db, store } = fresh();
    const raw = rawOfSize(PIECE_THRESHOLD + PIECE_BYTES);
    const content = randomBytes(PIECE_THRESHOLD + 10);
    expect(() =>
      store.batch(() => {
        ingest(store, raw, 'x', [content]);
        throw new Error('disk on fire');
      }),
    ).toThrow('disk on fire');
    for (const table of ['messages', 'message_raw_pieces', 'attachment_contents', 'attachment_content_pieces', 'receipts']) {
      expect(count(db, `SELECT COUNT(*) AS n FROM ${table}`), table).toBe(0);
    }
  });

  it('reports a message whose pieces are missing as damaged rather than returning short bytes', () => {
    const { db, store } = fresh();
    ingest(store, rawOfSize(PIECE_THRESHOLD + 2 * PIECE_BYTES), 's');
    db.prepare('DELETE FROM message_raw_pieces WHERE seq = 1').run();
    expect(() => messageRaw(db, 1)).toThrow(/damaged/);
  });
});

describe('attachment contents in pieces', () => {
  it.each(SIZES)('stores and reads back a %i-byte attachment exactly', (size) => {
    const { db, store } = fresh();
    const content = randomBytes(size);
    ingest(store, rawOfSize(1000), 's', [content]);
    const digest = sha256(content);
    const row = db.prepare('SELECT length(content) AS whole, pieces, size FROM attachment_contents WHERE sha256 = ?').get(digest);
    expect(row).toEqual({ whole: pieceCount(size) === 0 ? size : 0, pieces: pieceCount(size), size });
    expect(count(db, 'SELECT COUNT(*) AS n FROM attachment_content_pieces WHERE sha256 = ?', digest)).toBe(pieceCount(size));
    expect(readAttachmentContent(db, digest)?.equals(content)).toBe(true);
    const id = count(db, 'SELECT id AS n FROM attachments');
    const saved = attachmentContent(db, id);
    expect(saved).toMatchObject({ filename: 'file-0.bin', contentType: 'application/octet-stream' });
    expect(saved?.content.equals(content)).toBe(true);
    const viewed = db.prepare('SELECT content FROM attachment_content WHERE sha256 = ?').get(digest) as { content: Buffer };
    expect(viewed.content.equals(content)).toBe(true);
  });

  it('stores a large content once however many messages carry it, and each message still lists it', () => {
    const { db, store } = fresh();
    const content = randomBytes(PIECE_THRESHOLD + 2 * PIECE_BYTES + 7);
    const small = randomBytes(100);
    ingest(store, rawOfSize(2000), 'a', [content, small]);
    ingest(store, rawOfSize(2000), 'b', [content]);
    // The same content twice in one message is one content too.
    ingest(store, rawOfSize(2000), 'c', [content, content]);
    expect(count(db, 'SELECT COUNT(*) AS n FROM attachments')).toBe(5);
    expect(count(db, 'SELECT COUNT(*) AS n FROM attachment_contents')).toBe(2);
    expect(count(db, 'SELECT COUNT(*) AS n FROM attachment_content_pieces')).toBe(pieceCount(content.length));
    const ids = (db.prepare('SELECT id FROM attachments WHERE size = ? ORDER BY id').all(content.length) as { id: number }[]).map((r) => r.id);
    expect(ids).toHaveLength(4);
    for (const id of ids) expect(attachmentContent(db, id)?.content.equals(content)).toBe(true);
  });
});

describe('message failures', () => {
  it('keep the bytes of a small message, not of one too large to bind whole (it stays on the server)', () => {
    const { db, store } = fresh();
    const small = rawOfSize(5000);
    store.recordMessageFailure('support', 'small', 'boom', small);
    store.recordMessageFailure('support', 'large', 'boom', rawOfSize(PIECE_THRESHOLD + 1));
    const rows = db.prepare('SELECT server_id, raw FROM message_failures ORDER BY server_id').all();
    expect(rows).toEqual([{ server_id: 'large', raw: null }, { server_id: 'small', raw: small }]);
  });
});

describe('migration 006', () => {
  it('leaves messages and contents stored before it readable, whole, through the new views and readers', () => {
    const migrations = fileURLToPath(new URL('../../src/store/migrations/', import.meta.url));
    const upTo5 = mkdtempSync(join(tmpdir(), 'mailpoll-migrations-'));
    for (const name of readdirSync(migrations).filter((n) => Number.parseInt(n, 10) <= 5)) copyFileSync(join(migrations, name), join(upTo5, name));
    // A database as mailpoll left it before version 6, with a message and an attachment in it.
    const old = new Database(':memory:');
    try {
      migrate(old, `${upTo5}/`);
    } finally {
      rmSync(upTo5, { recursive: true, force: true });
    }
    expect(old.pragma('user_version', { simple: true })).toBe(5);
    const raw = rawOfSize(3000);
    const content = randomBytes(700);
    old.prepare(
      `INSERT INTO messages (id, mailbox, received_at, raw, raw_size, raw_sha256, dedupe_hash) VALUES (1, 'm', '2026-01-01T00:00:00.000Z', ?, ?, ?, 'h')`,
    ).run(raw, raw.length, sha256(raw));
    old.prepare('INSERT INTO attachment_contents (sha256, size, content) VALUES (?, ?, ?)').run(sha256(content), content.length, content);
    old.prepare(`INSERT INTO attachments (message_ref, content_type, size, sha256) VALUES (1, 'application/pdf', ?, ?)`).run(content.length, sha256(content));
    migrate(old, migrations);
    expect(old.pragma('user_version', { simple: true })).toBeGreaterThanOrEqual(6);
    expect(messageRaw(old, 1)?.equals(raw)).toBe(true);
    expect(attachmentContent(old, 1)?.content.equals(content)).toBe(true);
    expect((old.prepare('SELECT raw FROM message_raw WHERE id = 1').get() as { raw: Buffer }).raw.equals(raw)).toBe(true);
    old.close();
  });
});
