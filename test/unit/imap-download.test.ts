import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import { describe, expect, it } from 'vitest';
import { collect, downloadMessage } from '../../src/sources/imap-download.js';
import { LARGE_MESSAGE_BYTES } from '../../src/sources/mail-source.js';
import { byTransfer } from '../../src/sources/imap.js';
import type { Candidate } from '../../src/sources/mail-source.js';

/** `bytes` as the windows a download streams, and whether the consumer stopped it early. */
function windows(bytes: Buffer, size: number): { chunks: AsyncIterable<Buffer>; stoppedEarly: () => boolean; served: () => number } {
  let served = 0;
  let stopped = false;
  const chunks = {
    async *[Symbol.asyncIterator]() {
      try {
        for (let at = 0; at < bytes.length; at += size) {
          const chunk = bytes.subarray(at, at + size);
          served += chunk.length;
          yield chunk;
        }
      } finally {
        stopped = served < bytes.length;
      }
    },
  };
  return { chunks, stoppedEarly: () => stopped, served: () => served };
}

describe('collect', () => {
  const message = randomBytes(1_000_003);

  it('copies the windows into one buffer of the announced size, no larger', async () => {
    const w = windows(message, 65_536);
    const result = await collect(w.chunks, message.length, 10_000_000);
    expect(result.kind).toBe('raw');
    if (result.kind !== 'raw') return;
    expect(result.raw.equals(message)).toBe(true);
    expect(result.raw.buffer.byteLength).toBe(message.length);
  });

  it('grows when the server serves more than it announced, and keeps every byte', async () => {
    for (const announced of [0, 1, 999_999, 500_000]) {
      const result = await collect(windows(message, 300_000).chunks, announced, 10_000_000);
      expect(result.kind === 'raw' && result.raw.equals(message), `announced ${announced}`).toBe(true);
    }
  });

  it('returns only the bytes served when the server serves less than it announced', async () => {
    const result = await collect(windows(message, 70_000).chunks, 2_000_000, 10_000_000);
    expect(result.kind === 'raw' && result.raw.length === message.length && result.raw.equals(message)).toBe(true);
  });

  it('stops the download as soon as the message passes maxBytes', async () => {
    const w = windows(message, 100_000);
    expect(await collect(w.chunks, 900_000, 950_000)).toEqual({ kind: 'too-large' });
    expect(w.stoppedEarly()).toBe(true);
    expect(w.served()).toBe(1_000_000);
  });

  it('takes a message of exactly maxBytes', async () => {
    const result = await collect(windows(message, 100_000).chunks, message.length, message.length);
    expect(result.kind === 'raw' && result.raw.equals(message)).toBe(true);
  });
});

describe('byTransfer', () => {
  const c = (uid: number, size: number): Candidate => ({ serverId: `1:${uid}`, uid, size });

  it('keeps small messages together and each large one alone, in server order', () => {
    const big = LARGE_MESSAGE_BYTES + 1;
    const runs = byTransfer([c(1, 10), c(2, 20), c(3, big), c(4, big), c(5, LARGE_MESSAGE_BYTES), c(6, 5)]);
    expect(runs.map((r) => ({ large: r.large, uids: r.candidates.map((x) => x.uid) }))).toEqual([
      { large: false, uids: [1, 2] },
      { large: true, uids: [3] },
      { large: true, uids: [4] },
      { large: false, uids: [5, 6] },
    ]);
    expect(byTransfer([])).toEqual([]);
  });
});

/** Just what downloadMessage() uses of imapflow: download() and `usable`. */
function fakeClient(answer: () => { meta?: { expectedSize: number }; content?: Readable }, usable = true) {
  const calls: unknown[][] = [];
  const client = {
    usable,
    async download(...args: unknown[]) {
      calls.push(args);
      return answer();
    },
  };
  return { client: client as unknown as ImapFlow, calls };
}

/** A stream that serves `bytes` and then fails with imapflow's error `code`. */
function failing(bytes: Buffer, code: string): Readable {
  return Readable.from((async function* () {
    yield bytes;
    throw Object.assign(new Error(code), { code });
  })());
}

describe('downloadMessage', () => {
  const message = randomBytes(300_000);

  it('asks for the whole message by UID in 2 MiB windows and sizes its buffer by the server\'s RFC822.SIZE', async () => {
    const { client, calls } = fakeClient(() => ({ meta: { expectedSize: message.length }, content: Readable.from([message.subarray(0, 100_000), message.subarray(100_000)]) }));
    const result = await downloadMessage(client, 42, 5, 10_000_000);
    expect(result.kind === 'raw' && result.raw.equals(message) && result.raw.buffer.byteLength === message.length).toBe(true);
    expect(calls).toEqual([['42', undefined, { uid: true, chunkSize: 2 * 1024 * 1024 }]]);
  });

  it('reports a message the server no longer has, before or during the download, as vanished', async () => {
    expect(await downloadMessage(fakeClient(() => ({})).client, 1, 10, 100)).toEqual({ kind: 'vanished' });
    const midway = fakeClient(() => ({ meta: { expectedSize: message.length }, content: failing(message.subarray(0, 1000), 'DownloadIncomplete') }));
    expect(await downloadMessage(midway.client, 1, 10, 10_000_000)).toEqual({ kind: 'vanished' });
  });

  it('reports a server that keeps sending as runaway, and throws what a broken connection throws', async () => {
    const runaway = fakeClient(() => ({ meta: { expectedSize: 10 }, content: failing(message, 'DownloadOverflow') }));
    expect(await downloadMessage(runaway.client, 1, 10, 10_000_000)).toEqual({ kind: 'runaway' });
    const broken = fakeClient(() => ({ meta: { expectedSize: message.length }, content: failing(message.subarray(0, 1000), 'DownloadIncomplete') }), false);
    await expect(downloadMessage(broken.client, 1, 10, 10_000_000)).rejects.toThrow('DownloadIncomplete');
    const reset = fakeClient(() => ({ meta: { expectedSize: message.length }, content: failing(message.subarray(0, 1000), 'ECONNRESET') }));
    await expect(downloadMessage(reset.client, 1, 10, 10_000_000)).rejects.toThrow('ECONNRESET');
  });
});
