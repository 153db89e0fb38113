import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage, uniqueId } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { DaemonProcess, sleep, waitFor } from '../support/daemon-process.js';
import { query, runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser, type Variant } from '../support/scenario.js';

/**
 * `mailpoll daemon` as a real process against a real Dovecot: IDLE wakeups, a clean stop on
 * SIGTERM mid-run, a server restart, and a cron `fetch` beside it on the same database.
 * Requires `npm run build` first (the built CLI is what runs).
 */
let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});

afterEach(async () => {
  await DaemonProcess.killAll();
});
afterAll(async () => {
  await DaemonProcess.killAll();
  await server?.stop();
});

const IMAPS: Variant = { protocol: 'imap', tls: 'implicit' };
const POP3S: Variant = { protocol: 'pop3', tls: 'implicit' };
/** Enough mail that a SIGTERM after the first commits lands mid-run, however fast the pipeline. */
const MANY = 2000;

function safeQuery<T>(db: string, sql: string, ...params: unknown[]): T[] {
  try {
    return query<T>(db, sql, ...params);
  } catch {
    return []; // the daemon has not created the database yet
  }
}

const storedIds = (db: string) => safeQuery<{ message_id: string }>(db, 'SELECT message_id FROM messages').map((r) => r.message_id);
const countStored = (db: string) => safeQuery<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM messages')[0]?.n ?? 0;
const polledOnce = (db: string, mailbox: string) =>
  (safeQuery<{ last_success_at: string | null }>(db, 'SELECT last_success_at FROM mailbox_state WHERE mailbox = ?', mailbox)[0]?.last_success_at ?? null) !== null;

async function deliverMany(user: string, n: number, tag: string, padBytes = 0): Promise<string[]> {
  const ids: string[] = [];
  const pad = padBytes > 0 ? `${'x'.repeat(76)}\r\n`.repeat(Math.ceil(padBytes / 78)) : '';
  for (let i = 0; i < n; i++) {
    const id = uniqueId(`${tag}${i}`);
    ids.push(id);
    await server.deliver(user, plainMessage({ messageId: id, subject: `${tag} ${i}` }, `body ${i}\r\n${'lorem ipsum '.repeat(i % 40)}\r\n${pad}`));
  }
  return ids;
}

/** Each delivered message stored exactly once, nothing else stored, nothing owed to the server. */
function assertExactlyOnce(db: string, delivered: readonly string[]): void {
  const ids = storedIds(db);
  expect(ids).toHaveLength(delivered.length);
  expect(new Set(ids)).toEqual(new Set(delivered));
  expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM receipts WHERE acknowledged_at IS NULL')[0]?.n).toBe(0);
}

/** The daemon's first poll is done and its IDLE watcher sits in IDLE with the catch-up poll behind it. */
async function awaitIdleReady(daemon: DaemonProcess, db: string, mailbox: string): Promise<void> {
  await waitFor('the first poll', () => polledOnce(db, mailbox), 20_000, daemon);
  await waitFor('the IDLE watcher', () => daemon.count('IDLE watcher waiting for new mail') >= 1, 20_000, daemon);
  // Once connected, the watcher asks for a catch-up poll (mail may have come between the first
  // poll's listing and the start of IDLE): two polls in all, both finished.
  await waitFor(
    'the catch-up poll',
    () => daemon.count(/^polling: /) >= 2 && daemon.count(/^polling: /) === daemon.count(/^poll finished/),
    20_000,
    daemon,
  );
}

/**
 * A TCP relay on 127.0.0.1 in front of Dovecot that can go down (every connection through it
 * ends, the port refuses) and come back up on the same port.
 */
class Relay {
  port = 0;
  private listener: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly host: string, private readonly target: number) {}

  async up(): Promise<void> {
    const listener = createServer((client) => {
      const upstream = connect(this.target, this.host);
      this.sockets.add(client).add(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    // Coming back on the same port can meet it briefly taken (an outgoing connection's local
    // port): retry for a few seconds.
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          listener.once('error', reject);
          listener.listen(this.port, '127.0.0.1', () => resolve());
        });
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 50) throw err;
        await sleep(100);
      }
    }
    this.port = (listener.address() as AddressInfo).port;
    this.listener = listener;
  }

  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const listener = this.listener;
    this.listener = undefined;
    if (listener !== undefined) await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
}

describe('IMAP IDLE', () => {
  it('a message delivered while the daemon waits is stored within seconds although every is an hour', async () => {
    const user = await newUser(server);
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const entry = mailboxEntry(server, IMAPS, user, { idle: true, every: '1h' });
    const config = writeConfig(dir, { database: db, mailboxes: [entry] });
    const daemon = DaemonProcess.spawn(config);
    await awaitIdleReady(daemon, db, entry.name as string);
    expect(countStored(db)).toBe(0);

    const id = uniqueId('idle');
    await server.deliver(user.user, plainMessage({ messageId: id }));
    const ms = await waitFor('the IDLE-triggered poll to store the message', () => storedIds(db).includes(id), 20_000, daemon);
    expect(ms).toBeLessThan(10_000);
    expect(daemon.count('IDLE: the server reported new mail')).toBeGreaterThanOrEqual(1);

    const stop = await daemon.stop();
    expect(stop.code, daemon.stderr).toBe(0);
    assertExactlyOnce(db, [id]);
  }, 60_000);
});

describe.each<Variant>([IMAPS, POP3S])('SIGTERM mid-run over $protocol with after: delete', (variant) => {
  it('exits 0 within seconds and leaves nothing half-done; the next fetch stores the rest exactly once', async () => {
    const user = await newUser(server);
    const delivered = await deliverMany(user.user, MANY, 'term');
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    // The daemon's poll takes at most 1000 (so it stops mid-mailbox however fast it runs); the
    // follow-up fetch may take all that is left, however far the daemon got.
    const configWith = (maxMessages: number) => writeConfig(dir, {
      database: db,
      mailboxes: [mailboxEntry(server, variant, user, { after: 'delete', every: '1h', maxMessages, ...(variant.protocol === 'imap' ? { idle: true } : {}) })],
    });
    const config = configWith(MANY / 2);
    expect(await server.listMaildir(user.user)).toHaveLength(MANY);

    const daemon = DaemonProcess.spawn(config);
    await waitFor('20 messages stored', () => countStored(db) >= 20, 60_000, daemon);
    const stop = await daemon.stop();
    expect(stop.code, daemon.stderr).toBe(0);
    expect(stop.ms).toBeLessThan(5_000);
    for (const step of ['shutdown requested: finishing the messages in hand (signal again to exit at once)', 'polls in flight finished', 'database closed; daemon stopped']) {
      expect(daemon.count(step), step).toBe(1);
    }

    // Stopped mid-run: some stored, not all.
    const stored = storedIds(db);
    expect(stored.length).toBeGreaterThanOrEqual(20);
    expect(stored.length).toBeLessThan(MANY);
    expect(new Set(stored).size).toBe(stored.length);
    // Nothing owed: every committed message was acknowledged (here: deleted) before the exit.
    expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM receipts WHERE acknowledged_at IS NULL')[0]?.n).toBe(0);
    expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM mailbox_state WHERE lease_owner IS NOT NULL')[0]?.n).toBe(0);
    // Nothing lost: every message gone from the server is stored, and only those are.
    const onServer = new Set((await server.listMaildir(user.user)).map((m) => m.name));
    expect(onServer.size + stored.length).toBe(MANY);

    const final = await runMailpoll(['fetch', '--now', '--config', configWith(MANY), '--json']);
    expect(final.code, final.stderr).toBe(0);
    assertExactlyOnce(db, delivered);
    expect(await server.listMaildir(user.user)).toHaveLength(0);
  }, 120_000);
});

describe('a Dovecot restart', () => {
  it('is survived: the watcher reconnects with backoff, catches up, and IDLE works again; SIGTERM still exits 0', async () => {
    const user = await newUser(server);
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const relay = new Relay(server.host, server.ports.imaps);
    await relay.up();
    try {
      // Through the relay on 127.0.0.1 (the certificate names it too, so TLS still verifies).
      const entry = mailboxEntry(server, IMAPS, user, { idle: true, every: '1h', host: '127.0.0.1', port: relay.port });
      const config = writeConfig(dir, { database: db, mailboxes: [entry] });
      const daemon = DaemonProcess.spawn(config);
      await awaitIdleReady(daemon, db, entry.name as string);

      // What a client sees of `systemctl restart dovecot`: its sessions end, the port refuses
      // connections for a while, then accepts them again. (The harness's restart() alone leaves
      // running IMAP sessions alive as orphans, so the relay ends them the way Dovecot would.)
      await relay.down();
      await server.restart();
      const during = uniqueId('during');
      await server.deliver(user.user, plainMessage({ messageId: during }));
      await sleep(1_500);
      await relay.up();
      const caughtUp = await waitFor('the message delivered during the outage', () => storedIds(db).includes(during), 30_000, daemon);
      expect(caughtUp).toBeLessThan(15_000);
      await waitFor('the IDLE watcher to be back', () => daemon.count('IDLE watcher waiting for new mail') >= 2, 30_000, daemon);
      expect(daemon.count('IDLE watcher disconnected; reconnecting')).toBeGreaterThanOrEqual(2);

      await waitFor('polls to settle', () => daemon.count(/^polling: /) === daemon.count(/^poll finished/), 20_000, daemon);
      const after = uniqueId('after');
      await server.deliver(user.user, plainMessage({ messageId: after }));
      const ms = await waitFor('the message delivered after the restart', () => storedIds(db).includes(after), 30_000, daemon);
      expect(ms).toBeLessThan(10_000);
      expect(daemon.running).toBe(true);

      const stop = await daemon.stop();
      expect(stop.code, daemon.stderr).toBe(0);
      assertExactlyOnce(db, [during, after]);
    } finally {
      await relay.down();
    }
  }, 90_000);
});

describe('a daemon beside a cron fetch on one database', () => {
  it('stores every message exactly once; the fetch skips what the daemon holds', async () => {
    const users = [await newUser(server), await newUser(server), await newUser(server)];
    const entries = [
      mailboxEntry(server, IMAPS, users[0]!, { after: 'delete', every: '10s', idle: true }),
      mailboxEntry(server, POP3S, users[1]!, { after: 'delete', every: '10s' }),
      mailboxEntry(server, IMAPS, users[2]!, { after: 'seen', every: '10s' }),
    ];
    const delivered: string[] = [];
    // Enough that the daemon is still busy when the cron runs start: the faster a poll, the more it
    // takes for the two to meet. Counts alone stopped being enough as polls got faster (400 small
    // messages failed once; 800 failed once after the IMAP reader came): some 40 MB per mailbox
    // keeps the daemon's first polls going for a second or more, well past the fetch's start-up.
    for (const u of users) delivered.push(...(await deliverMany(u.user, 800, 'both', 48 * 1024)));
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, { database: db, mailboxes: entries });

    const daemon = DaemonProcess.spawn(config);
    await waitFor('the daemon to start storing', () => countStored(db) >= 1, 30_000, daemon);
    // Two cron runs while the daemon works, and more mail arriving meanwhile.
    const [first, , more] = await Promise.all([
      runMailpoll(['fetch', '--now', '--config', config, '--json']),
      sleep(300),
      (async () => {
        const ids: string[] = [];
        for (const u of users) ids.push(...(await deliverMany(u.user, 10, 'late')));
        return ids;
      })(),
    ]);
    const second = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    delivered.push(...more);
    for (const run of [first, second]) expect(run.code, run.stderr).toBe(0);
    const summaries = [first, second].flatMap((r) => JSON.parse(r.stdout).mailboxes as { skipped?: string }[]);
    expect(summaries.some((s) => s.skipped !== undefined), 'the fetch found a mailbox leased by the daemon').toBe(true);

    await waitFor('every message stored', () => countStored(db) >= delivered.length, 60_000, daemon);
    const stop = await daemon.stop();
    expect(stop.code, daemon.stderr).toBe(0);

    assertExactlyOnce(db, delivered);
    // No message was fetched twice: no receipt records a duplicate.
    expect(query<{ n: number }>(db, "SELECT COUNT(*) AS n FROM receipts WHERE outcome <> 'stored'")[0]?.n).toBe(0);
    expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM mailbox_state WHERE lease_owner IS NOT NULL')[0]?.n).toBe(0);
    expect(await server.listMaildir(users[0]!.user)).toHaveLength(0);
    expect(await server.listMaildir(users[1]!.user)).toHaveLength(0);
  }, 120_000);
});
