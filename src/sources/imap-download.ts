import type { ImapFlow } from 'imapflow';

/**
 * A large message over IMAP without double buffering. In a plain FETCH, imapflow collects the
 * whole literal in chunks and then concatenates them: a 70 MB message holds 140 MB at that
 * moment. download() instead asks for it in windows (`BODY.PEEK[]<offset.length>`, so \Seen is
 * never set), one command each, and streams the windows; they are copied here into one buffer of
 * the size the server reported, so the message exists once plus one window.
 */

/**
 * One window. imapflow collects each window's literal in pieces and concatenates it, so every
 * window leaves about twice its size behind for the garbage collector; for a 72 MB message,
 * measured peak RSS over the downloaded bytes: 36 MB at 1 MiB windows, 42 MB at 2 MiB, 55 MB at
 * 4 MiB, 77 MB at 16 MiB (a plain FETCH: 80 MB). 2 MiB keeps that low with 35 round trips.
 */
const WINDOW_BYTES = 2 * 1024 * 1024;

/** What one download came to: the bytes, or why the message's bytes cannot be had. */
export type Downloaded = { kind: 'raw'; raw: Buffer } | { kind: 'vanished' } | { kind: 'too-large' } | { kind: 'runaway' };

/** imapflow's code for a message expunged while its windows were being fetched. */
const INCOMPLETE = 'DownloadIncomplete';
/** imapflow's code for a server that kept serving windows past twice the message's size. */
const OVERFLOW = 'DownloadOverflow';

/**
 * Downloads the message with `uid` whole. `sizeHint` is the listing's RFC822.SIZE; the size the
 * first window reports wins when it differs. Throws what the connection throws; a message that
 * disappears before or during the download is 'vanished', one that grows past `maxBytes`
 * 'too-large' (the download is then stopped, not finished), one whose windows never end
 * 'runaway'. Those three concern this message only: every window is a command of its own, so
 * the connection is still in step for the next one.
 */
export async function downloadMessage(client: ImapFlow, uid: number, sizeHint: number, maxBytes: number): Promise<Downloaded> {
  const download = await client.download(String(uid), undefined, { uid: true, chunkSize: WINDOW_BYTES });
  if (download.content === undefined) return { kind: 'vanished' };
  try {
    return await collect(download.content, download.meta.expectedSize || sizeHint, maxBytes);
  } catch (err) {
    // Ending early is indistinguishable from a complete message, so imapflow throws instead;
    // the connection itself is fine, only this message is gone (or served wrong).
    const code = (err as { code?: unknown }).code;
    if (code === INCOMPLETE && client.usable) return { kind: 'vanished' };
    if (code === OVERFLOW && client.usable) return { kind: 'runaway' };
    throw err;
  }
}

/**
 * Copies `chunks` into one buffer, allocated once at `expected` bytes. A server whose size was
 * wrong costs a larger buffer and one copy (growth by a quarter at least, so a long series of
 * small overruns stays a few copies); a short message leaves the rest of the buffer unused rather
 * than costing another copy. Returning early (too large) ends the iteration, which stops the
 * download.
 */
export async function collect(chunks: AsyncIterable<Buffer>, expected: number, maxBytes: number): Promise<Downloaded> {
  let buffer = Buffer.allocUnsafe(Math.max(0, Math.min(expected, maxBytes)));
  let filled = 0;
  for await (const chunk of chunks) {
    const needed = filled + chunk.length;
    if (needed > maxBytes) return { kind: 'too-large' };
    if (needed > buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(maxBytes, Math.max(needed, Math.ceil(buffer.length * 1.25))));
      buffer.copy(grown, 0, 0, filled);
      buffer = grown;
    }
    chunk.copy(buffer, filled);
    filled = needed;
  }
  return { kind: 'raw', raw: filled === buffer.length ? buffer : buffer.subarray(0, filled) };
}
