import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage, uniqueId } from '../fixtures/messages.js';
import { startCuttingProxy } from '../support/cutting-proxy.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { query, runMailpoll, spawnMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser, type Variant } from '../support/scenario.js';

/**
 * Promise 2: nothing is deleted on the server before it is committed, nothing is stored twice,
 * whatever point a run dies at. Each test keeps an independent record of what was delivered
 * (the Message-IDs) and checks the database and the server against it.
 */
let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
});

const MESSAGES = 300;

async function deliverMany(user: string, n: number): Promise<Map<string, string>> {
  const delivered = new Map<string, string>(); // Message-ID -> maildir file name
  for (let i = 0; i < n; i++) {
    const id = uniqueId(`m${i}`);
    // Varying sizes so runs do not cut at the same place of every message.
    delivered.set(id, await server.deliver(user, plainMessage({ messageId: id, subject: `message ${i}` }, `body ${i}\r\n${'lorem ipsum '.repeat(i % 40)}\r\n`)));
  }
  return delivered;
}

function storedIds(db: string): string[] {
  return query<{ message_id: string }>(db, 'SELECT message_id FROM messages').map((r) => r.message_id);
}

/** Every message no longer on the server is in the database: nothing was lost. */
async function assertNothingLost(user: string, delivered: Map<string, string>, db: string): Promise<void> {
  const onServer = new Set((await server.listMaildir(user)).map((m) => m.name.split(':')[0]));
  const stored = new Set(storedIds(db));
  for (const [id, file] of delivered) {
    if (!onServer.has(file.split(':')[0])) expect(stored.has(id), `${id} left the server but is not stored`).toBe(true);
  }
}

function assertExactlyOnce(db: string, delivered: Map<string, string>): void {
  const ids = storedIds(db);
  expect(ids).toHaveLength(delivered.size);
  expect(new Set(ids)).toEqual(new Set(delivered.keys()));
  expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM receipts WHERE acknowledged_at IS NULL')[0]?.n).toBe(0);
}

async function countStored(db: string): Promise<number> {
  try {
    return query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM messages')[0]?.n ?? 0;
  } catch {
    return 0; // not created yet
  }
}

/** Starts a fetch and SIGKILLs it once at least `atLeast` messages are committed. */
async function killWhenStored(config: string, db: string, atLeast: number): Promise<boolean> {
  const child = spawnMailpoll(['fetch', '--now', '--config', config, '--log-level', 'warn']);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + 60_000;
  while (!done && Date.now() < deadline) {
    if ((await countStored(db)) >= atLeast) {
      child.kill('SIGKILL');
      await exited;
      return true;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGKILL');
  await exited;
  return false;
}

describe.each<Variant>([
  { protocol: 'imap', tls: 'implicit' },
  { protocol: 'pop3', tls: 'implicit' },
])('exactly once over $protocol with after: delete', (variant) => {
  it('kill -9 at several points, then a normal run: every message stored exactly once', async () => {
    const user = await newUser(server);
    const delivered = await deliverMany(user.user, MESSAGES);
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, { database: db, mailboxes: [mailboxEntry(server, variant, user, { after: 'delete' })] });

    let kills = 0;
    for (const point of [10, 90, 200]) {
      if (await killWhenStored(config, db, point)) kills += 1;
      await assertNothingLost(user.user, delivered, db);
      const ids = storedIds(db);
      expect(new Set(ids).size).toBe(ids.length);
    }
    expect(kills, 'the kills landed mid-run').toBeGreaterThanOrEqual(2);

    const final = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(final.code, final.stderr).toBe(0);
    assertExactlyOnce(db, delivered);
    expect(await server.listMaildir(user.user)).toHaveLength(0);
  });

  it('the server dropping the connection mid-run loses nothing and duplicates nothing', async () => {
    const user = await newUser(server);
    const delivered = await deliverMany(user.user, 60);
    const target = variant.protocol === 'imap' ? server.ports.imaps : server.ports.pop3s;
    const proxy = await startCuttingProxy(server.host, target);
    try {
      const dir = tempDir();
      const db = join(dir, 'mailpoll.db');
      // Through the proxy on 127.0.0.1: the certificate names 127.0.0.1 too, so TLS still verifies.
      const entry = mailboxEntry(server, variant, user, { after: 'delete', host: '127.0.0.1', port: proxy.port });
      const config = writeConfig(dir, { database: db, mailboxes: [entry] });
      // Each run is cut a little later than the last, so runs make progress and are cut at
      // different places: during the listing, mid-message, between a commit and its acknowledgement.
      for (let i = 0; i < 40; i++) {
        proxy.cutAfterServerBytes = 3_000 + i * 1_700;
        const run = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
        await assertNothingLost(user.user, delivered, db);
        const ids = storedIds(db);
        expect(new Set(ids).size).toBe(ids.length);
        if (run.code === 0) break;
        expect(run.code).toBe(1);
        expect(JSON.parse(run.stdout).mailboxes[0].ok).toBe(false);
      }
      expect(proxy.cuts).toBeGreaterThanOrEqual(3);
      expect(await countStored(db)).toBeGreaterThan(0);
      proxy.cutAfterServerBytes = undefined;
      const final = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
      expect(final.code, final.stdout + final.stderr).toBe(0);
      assertExactlyOnce(db, delivered);
      expect(await server.listMaildir(user.user)).toHaveLength(0);
    } finally {
      await proxy.close();
    }
  });
});

describe('dedupe across mailboxes', () => {
  it('a message delivered to two mailboxes is stored once', async () => {
    const a = await newUser(server);
    const b = await newUser(server);
    const id = uniqueId('both');
    await server.deliver(a.user, Buffer.concat([Buffer.from(`Delivered-To: ${a.user}@example.com\r\n`), plainMessage({ messageId: id })]));
    await server.deliver(b.user, Buffer.concat([Buffer.from(`Delivered-To: ${b.user}@example.com\r\n`), plainMessage({ messageId: id })]));
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, {
      database: db,
      mailboxes: [mailboxEntry(server, { protocol: 'imap', tls: 'implicit' }, a), mailboxEntry(server, { protocol: 'pop3', tls: 'implicit' }, b)],
    });
    const run = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(storedIds(db)).toEqual([id]);
    const outcomes = query<{ outcome: string }>(db, 'SELECT outcome FROM receipts ORDER BY outcome').map((r) => r.outcome);
    expect(outcomes).toEqual(['duplicate', 'stored']);
  });
});
