import { StoreError } from '../errors.js';
import type { Db } from './database.js';

/**
 * Large blobs in pieces (migration 006). better-sqlite3 binds every Buffer with SQLITE_TRANSIENT,
 * a full copy, and SQLite then builds the row record, another full copy: a 70 MB message bound
 * whole costs some 210 MB at the insert. Written as 1 MiB rows, each insert holds 1 MiB twice and
 * the message itself stays the only full copy. Small blobs stay whole: one row is cheaper to
 * write and to read, and every existing query of `messages.raw` keeps working for them.
 */

/** A blob longer than this is stored in pieces. */
export const PIECE_THRESHOLD = 4 * 1024 * 1024;
/** The size of each piece (the last one is shorter). */
export const PIECE_BYTES = 1024 * 1024;

/** Goes into the whole-blob column (NOT NULL) when the bytes are in pieces. */
const EMPTY = Buffer.alloc(0);

/** How many pieces a blob of `size` bytes is stored in: 0 means whole, in its own column. */
export function pieceCount(size: number): number {
  return size > PIECE_THRESHOLD ? Math.ceil(size / PIECE_BYTES) : 0;
}

/** What the whole-blob column gets: the bytes themselves, or X'' when they go into pieces. */
export function wholeColumn(bytes: Buffer): Buffer {
  return pieceCount(bytes.length) === 0 ? bytes : EMPTY;
}

/** Views of `bytes` in storage order, without copying. */
function* slices(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += PIECE_BYTES) yield bytes.subarray(at, at + PIECE_BYTES);
}

/**
 * SQLite's page cache while pieces are written, in KiB (negative cache_size). The pages of a large
 * blob are written once and never read back in the same run, yet at the usual 32 MiB (database.ts)
 * they would fill the cache to its limit, some 30 MB on top of the blob; at this size SQLite
 * spills them to the WAL early. The usual size is restored straight after.
 */
const PIECE_CACHE_KIB = 2048;

/** Writes the pieces of large blobs. Call inside the transaction that writes the owning row. */
export class PieceWriter {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      raw: db.prepare<[number, number, Buffer]>('INSERT INTO message_raw_pieces (message_ref, seq, data) VALUES (?, ?, ?)'),
      content: db.prepare<[string, number, Buffer]>('INSERT INTO attachment_content_pieces (sha256, seq, data) VALUES (?, ?, ?)'),
    };
  }

  /** The raw message of `messageRef`, when it is large enough to be in pieces (else nothing to do). */
  messageRaw(messageRef: number, raw: Buffer): void {
    if (pieceCount(raw.length) === 0) return;
    this.withSmallCache(() => {
      let seq = 0;
      for (const piece of slices(raw)) this.s.raw.run(messageRef, seq++, piece);
    });
  }

  /** An attachment content just inserted under `sha256`, when it is large enough to be in pieces. */
  attachmentContent(sha256: string, content: Buffer): void {
    if (pieceCount(content.length) === 0) return;
    this.withSmallCache(() => {
      let seq = 0;
      for (const piece of slices(content)) this.s.content.run(sha256, seq++, piece);
    });
  }

  private withSmallCache(write: () => void): void {
    const usual = this.db.pragma('cache_size', { simple: true }) as number;
    this.db.pragma(`cache_size = ${-PIECE_CACHE_KIB}`);
    try {
      write();
    } finally {
      this.db.pragma(`cache_size = ${usual}`);
    }
  }
}

/**
 * Reassembles a blob: `whole` when it was stored whole, else its pieces copied one by one into a
 * buffer of the recorded size, so reading a 70 MB message holds it once plus one piece.
 */
function assemble(what: string, whole: Buffer, pieces: number, size: number, rows: Iterable<{ data: Buffer }>): Buffer {
  if (pieces === 0) return whole;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  let count = 0;
  for (const { data } of rows) {
    if (at + data.length > size) throw new StoreError(`${what} is damaged: its pieces hold more than its ${size} bytes`);
    data.copy(out, at);
    at += data.length;
    count += 1;
  }
  if (at !== size || count !== pieces) {
    throw new StoreError(`${what} is damaged: ${count} of ${pieces} pieces with ${at} of ${size} bytes`);
  }
  return out;
}

/** The exact bytes of message `id` as the server served them, or undefined for an unknown id. */
export function readMessageRaw(db: Db, id: number): Buffer | undefined {
  const row = db
    .prepare<[number], { raw: Buffer; raw_size: number; raw_pieces: number }>('SELECT raw, raw_size, raw_pieces FROM messages WHERE id = ?')
    .get(id);
  if (row === undefined) return undefined;
  const rows = db.prepare<[number], { data: Buffer }>('SELECT data FROM message_raw_pieces WHERE message_ref = ? ORDER BY seq');
  return assemble(`message ${id}`, row.raw, row.raw_pieces, row.raw_size, row.raw_pieces === 0 ? [] : rows.iterate(id));
}

/** The decoded bytes of the attachment content `sha256`, or undefined when there is none. */
export function readAttachmentContent(db: Db, sha256: string): Buffer | undefined {
  const row = db
    .prepare<[string], { content: Buffer; size: number; pieces: number }>('SELECT content, size, pieces FROM attachment_contents WHERE sha256 = ?')
    .get(sha256);
  if (row === undefined) return undefined;
  const rows = db.prepare<[string], { data: Buffer }>('SELECT data FROM attachment_content_pieces WHERE sha256 = ? ORDER BY seq');
  return assemble(`attachment content ${sha256}`, row.content, row.pieces, row.size, row.pieces === 0 ? [] : rows.iterate(sha256));
}
