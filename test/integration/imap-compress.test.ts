import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { imapSource } from '../../src/sources/imap.js';
import { mailboxConfig } from '../fixtures/mailbox-config.js';
import { plainMessage } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { query, runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser } from '../support/scenario.js';

/**
 * A server that offers COMPRESS=DEFLATE (RFC 4978; Gmail does). imapflow turns it on, and the
 * connection it hands over after SELECT is then its inflating and deflating streams: the session's
 * own reader (imap-wire.ts) must read and write through them.
 */

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot({ extraConfig: 'protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n' });
});
afterAll(async () => {
  await server?.stop();
});

describe('IMAP against a server that offers COMPRESS=DEFLATE', () => {
  it('the session turns it on, and fetches and acknowledges through it', async () => {
    const user = await newUser(server, 'deflate');
    const sent = [0, 1, 2].map((i) => plainMessage({ subject: `deflated ${i}` }));
    for (const raw of sent) await server.deliver(user.user, raw);
    const mailbox = mailboxConfig({
      name: 'deflate', host: server.host, port: server.ports.imaps, username: user.user, after: 'seen',
      tls: { mode: 'implicit', caFile: server.caFile, insecureSkipVerify: false, allowPlaintext: false },
      timeouts: { connectMs: 10_000, commandMs: 5_000 },
    });
    // Every line written to a socket or stream (they take write() from Duplex), with the writer's kind.
    const written: string[] = [];
    const originalWrite = Duplex.prototype.write;
    const write = vi.spyOn(Duplex.prototype, 'write').mockImplementation(function (this: Duplex, ...args: Parameters<Duplex['write']>) {
      if (typeof args[0] === 'string' || Buffer.isBuffer(args[0])) written.push(`${this.constructor.name}: ${args[0].toString('latin1')}`);
      return originalWrite.apply(this, args);
    });
    const session = await imapSource(mailbox, user.password).open();
    try {
      const listing = await session.list(null);
      const got: Buffer[] = [];
      for await (const f of session.stream(listing.candidates, mailbox.maxMessageBytes)) got.push(f.raw as Buffer);
      expect(got).toEqual(sent);
      await session.acknowledge(listing.candidates.map((c) => c.serverId));
      await session.close();
    } finally {
      write.mockRestore();
      session.abort();
    }
    expect(written.some((w) => /^TLSSocket: \S+ COMPRESS DEFLATE\r\n$/.test(w))).toBe(true);
    // After COMPRESS, our commands go into imapflow's deflating stream, never straight to the socket.
    const fetches = written.filter((w) => w.includes(' UID FETCH '));
    expect(fetches.length).toBeGreaterThan(0);
    for (const w of fetches) expect(w).not.toMatch(/^(TLSSocket|Socket): /);
    for (const m of await server.listMaildir(user.user)) expect(m.flags).toContain('S');
  });

  it('fetches, stores and marks every message \\Seen', async () => {
    const user = await newUser(server, 'deflate');
    for (let i = 0; i < 3; i++) await server.deliver(user.user, plainMessage({ subject: `compressed ${i}` }));
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, { database: db, mailboxes: [mailboxEntry(server, { protocol: 'imap', tls: 'implicit' }, user, { timeouts: { command: '5s' } })] });
    const run = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM messages')[0]?.n).toBe(3);
    for (const m of await server.listMaildir(user.user)) expect(m.flags).toContain('S');
  });
});
