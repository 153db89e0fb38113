import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { imapSource } from '../../src/sources/imap.js';
import { PIECE_THRESHOLD } from '../../src/store/pieces.js';
import { LARGE_MESSAGE_BYTES } from '../../src/sources/mail-source.js';
import { mailboxConfig } from '../fixtures/mailbox-config.js';
import { attachmentMessage, plainMessage, uniqueId } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { openDb, query, runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser, VARIANTS, type Variant } from '../support/scenario.js';

/**
 * A message over the large-message thresholds (an IMAP command of its own, storage in pieces) goes
 * through a real fetch over IMAPS and POP3S, between two small ones, and comes out byte for byte:
 * through the code's readers, the sqlite3 view and the CLI. Some 6 MiB, not 70: the thresholds are
 * 4 MiB, and the tests stay fast.
 */

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
  // Each test's directory holds a database with a 6 MB message and saved copies of it.
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const dirs: string[] = [];
function workDir(): string {
  const dir = tempDir('mailpoll-large-');
  dirs.push(dir);
  return dir;
}

/** 4.5 MiB of random bytes: over the 4 MiB threshold decoded, about 6.1 MB base64-encoded. */
const ATTACHMENT = randomBytes(4.5 * 1024 * 1024);

const IMAPS = VARIANTS.find((v) => v.protocol === 'imap' && v.tls === 'implicit') as Variant;
const POP3S = VARIANTS.find((v) => v.protocol === 'pop3' && v.tls === 'implicit') as Variant;

/** The sqlite3 shell, for the README's writefile() recipe; the test of it is skipped without one. */
const SQLITE3 = ['/usr/bin/sqlite3', '/usr/local/bin/sqlite3'].find((p) => existsSync(p));

interface StoredRow {
  id: number;
  raw_size: number;
  raw_pieces: number;
  whole: number;
  ticket: number;
}

describe.each([
  { variant: IMAPS, after: 'keep' },
  { variant: POP3S, after: 'delete' },
])('$variant.protocol ($variant.tls), after: $after', ({ variant, after }) => {
  it('stores a message over the thresholds byte for byte, in pieces, and the CLI reads it back', async () => {
    const user = await newUser(server, 'large');
    const large = attachmentMessage({ subject: 'Large scan', messageId: uniqueId('large') }, ATTACHMENT);
    expect(large.length).toBeGreaterThan(Math.max(PIECE_THRESHOLD, LARGE_MESSAGE_BYTES));
    const before = plainMessage({ subject: 'small before', messageId: uniqueId('before') });
    const afterIt = plainMessage({ subject: 'small after', messageId: uniqueId('after') });
    for (const raw of [before, large, afterIt]) await server.deliver(user.user, raw);
    const dir = workDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, { database: db, mailboxes: [mailboxEntry(server, variant, user, { after })] });

    const run = await runMailpoll(['fetch', '--now', '--json', '--config', config]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).mailboxes[0]).toMatchObject({ ok: true, fetched: 3, stored: 3 });

    // Stored in pieces: the whole-blob column is empty, size and hash are of the whole message.
    const [row] = query<StoredRow>(
      db,
      `SELECT m.id, m.raw_size, m.raw_pieces, length(m.raw) AS whole, t.number AS ticket
       FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.subject = 'Large scan'`,
    );
    expect(row).toMatchObject({ raw_size: large.length, whole: 0 });
    expect(row?.raw_pieces).toBeGreaterThan(1);
    const reader = openDb(db);
    try {
      const { messageRaw } = await import('../../src/store/ticket-queries.js');
      expect(messageRaw(reader, row?.id ?? 0)?.equals(large)).toBe(true);
      const viewed = reader.prepare('SELECT raw FROM message_raw WHERE id = ?').get(row?.id) as { raw: Buffer };
      expect(viewed.raw.equals(large)).toBe(true);
      const sha = reader.prepare('SELECT raw_sha256 FROM messages WHERE id = ?').get(row?.id) as { raw_sha256: string };
      const { createHash } = await import('node:crypto');
      expect(sha.raw_sha256).toBe(createHash('sha256').update(large).digest('hex'));
    } finally {
      reader.close();
    }
    // The small ones around it are stored whole, exactly as before.
    const small = query<{ raw: Buffer; raw_pieces: number }>(db, "SELECT raw, raw_pieces FROM messages WHERE subject LIKE 'small %' ORDER BY id");
    expect(small.map((r) => r.raw_pieces)).toEqual([0, 0]);
    expect(small.map((r) => r.raw.equals(before) || r.raw.equals(afterIt))).toEqual([true, true]);

    // tickets show lists the attachment; attachments save writes its exact bytes.
    const show = await runMailpoll(['tickets', 'show', String(row?.ticket), '--json', '--config', config]);
    expect(show.code, show.stderr).toBe(0);
    const attachments = (JSON.parse(show.stdout) as { messages: { attachments: { id: number; filename: string; size: number }[] }[] }).messages[0]?.attachments ?? [];
    const invoice = attachments.find((a) => a.filename === 'invoice.pdf');
    expect(invoice?.size).toBe(ATTACHMENT.length);
    const out = join(dir, 'saved');
    const save = await runMailpoll(['attachments', 'save', String(invoice?.id), '--out', out, '--config', config]);
    expect(save.code, save.stderr).toBe(0);
    expect(save.stdout).toBe(`${join(out, 'invoice.pdf')}\n`);
    expect(readFileSync(join(out, 'invoice.pdf')).equals(ATTACHMENT)).toBe(true);
    expect(query<{ pieces: number }>(db, 'SELECT pieces FROM attachment_contents WHERE size = ?', ATTACHMENT.length)[0]?.pieces).toBeGreaterThan(1);

    const exported = await runMailpoll(['tickets', 'export', '--format', 'jsonl', '--config', config]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout.trimEnd().split('\n')).toHaveLength(3);

    // The server side: IMAP never set \Seen by downloading (BODY.PEEK in every window); POP3
    // deleted what it committed. Either way a second run finds nothing new and stores nothing twice.
    const onServer = await server.listMaildir(user.user);
    if (after === 'keep') expect(onServer.map((m) => m.flags)).toEqual(['', '', '']);
    else expect(onServer).toEqual([]);
    const again = await runMailpoll(['fetch', '--now', '--json', '--config', config]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).mailboxes[0]).toMatchObject({ fetched: 0, stored: 0 });
    expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM messages')[0]?.n).toBe(3);

    if (SQLITE3 !== undefined) {
      // The README's recipe, in the sqlite3 shell (which may be older than the SQLite mailpoll uses).
      const eml = join(dir, 'message.eml');
      const shell = spawnSync(SQLITE3, ['-readonly', db, `SELECT writefile('${eml}', raw) FROM message_raw WHERE id = ${row?.id}`], { encoding: 'utf8' });
      expect(shell.status, shell.stderr).toBe(0);
      expect(readFileSync(eml).equals(large)).toBe(true);
      const pdf = join(dir, 'invoice.pdf');
      const attachment = spawnSync(SQLITE3, ['-readonly', db,
        `SELECT writefile('${pdf}', c.content) FROM attachments a JOIN attachment_content c ON c.sha256 = a.sha256 WHERE a.id = ${invoice?.id}`], { encoding: 'utf8' });
      expect(attachment.status, attachment.stderr).toBe(0);
      expect(readFileSync(pdf).equals(ATTACHMENT)).toBe(true);
    }
  });
});

describe('IMAP: a large message over maxMessageBytes', () => {
  it('is never downloaded, and the messages around it are stored', async () => {
    const user = await newUser(server, 'gone');
    const large = attachmentMessage({ subject: 'Large, then gone', messageId: uniqueId('gone') }, ATTACHMENT);
    await server.deliver(user.user, plainMessage({ subject: 'first', messageId: uniqueId('first') }));
    await server.deliver(user.user, large);
    await server.deliver(user.user, plainMessage({ subject: 'third', messageId: uniqueId('third') }));
    const dir = workDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, { database: db, mailboxes: [mailboxEntry(server, IMAPS, user, { after: 'keep', maxMessageBytes: large.length - 1, oversize: 'skip' })] });
    // Oversize is decided on the listed size before any download starts.
    const run = await runMailpoll(['fetch', '--now', '--json', '--config', config]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).mailboxes[0]).toMatchObject({ ok: true, stored: 2, oversize: 1 });
    expect(query<{ subject: string }>(db, 'SELECT subject FROM messages ORDER BY id').map((r) => r.subject)).toEqual(['first', 'third']);
  });
});

describe('IMAP session: how a large message is fetched', () => {
  it('fetches the large one in a command of its own, the small ones in set FETCHes, yielded in server order', async () => {
    const user = await newUser(server, 'alone');
    const large = attachmentMessage({ subject: 'alone', messageId: uniqueId('alone') }, ATTACHMENT);
    const smalls = [0, 1, 2].map((i) => plainMessage({ subject: `small ${i}`, messageId: uniqueId(`small${i}`) }));
    for (const raw of [smalls[0], large, smalls[1], smalls[2]] as Buffer[]) await server.deliver(user.user, raw);
    const mailbox = mailboxConfig({
      name: 'alone', host: server.host, port: server.ports.imaps, username: user.user, after: 'keep', maxMessageBytes: 100_000_000,
      tls: { mode: 'implicit', caFile: server.caFile, insecureSkipVerify: false, allowPlaintext: false },
      timeouts: { connectMs: 10_000, commandMs: 20_000 },
    });
    // Every command line written to the connection, whoever writes it (sockets take write() from
    // Duplex, which has its own copy of Writable's).
    const written: string[] = [];
    const originalWrite = Duplex.prototype.write;
    const write = vi.spyOn(Duplex.prototype, 'write').mockImplementation(function (this: Duplex, ...args: Parameters<Duplex['write']>) {
      if (typeof args[0] === 'string' || Buffer.isBuffer(args[0])) written.push(args[0].toString().trimEnd());
      return originalWrite.apply(this, args);
    });
    const session = await imapSource(mailbox, user.password).open();
    try {
      const listing = await session.list(null);
      const uids = listing.candidates.map((c) => c.uid);
      const got: Buffer[] = [];
      for await (const f of session.stream(listing.candidates, mailbox.maxMessageBytes)) {
        expect(f.error).toBeUndefined();
        got.push(f.raw as Buffer);
      }
      expect(got.map((b) => b.length)).toEqual([smalls[0], large, smalls[1], smalls[2]].map((b) => b?.length));
      expect(got[1]?.equals(large)).toBe(true);
      const fetches = written.filter((line) => /UID FETCH \S+ \(UID BODY\.PEEK\[\]\)$/.test(line)).map((line) => line.split(' ')[3]);
      expect(fetches).toEqual([String(uids[0]), String(uids[1]), `${uids[2]}:${uids[3]}`]);
      await session.close();
    } finally {
      write.mockRestore();
      session.abort();
    }
  });
});
