import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage, uniqueId } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { query, runMailpoll, spawnMailpoll, tempDir, writeConfig, type RunResult } from '../support/mailpoll.js';
import { mailboxEntry, newUser, type Variant } from '../support/scenario.js';

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
});

const IMAPS: Variant = { protocol: 'imap', tls: 'implicit' };
const POP3S: Variant = { protocol: 'pop3', tls: 'implicit' };

function finish(child: ReturnType<typeof spawnMailpoll>): Promise<RunResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A server that accepts connections and never says a word. */
async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const srv: Server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  return { port, close: () => new Promise((r) => { sockets.forEach((s) => s.destroy()); srv.close(() => r()); }) };
}

/** A port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('no overlap', () => {
  it('two fetch processes started at once on one database store every message exactly once', async () => {
    const users = [await newUser(server), await newUser(server), await newUser(server)];
    const delivered: string[] = [];
    for (const u of users) {
      for (let i = 0; i < 40; i++) {
        const id = uniqueId('both');
        delivered.push(id);
        await server.deliver(u.user, plainMessage({ messageId: id }));
      }
    }
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, {
      database: db,
      mailboxes: [
        mailboxEntry(server, IMAPS, users[0]!, { after: 'delete' }),
        mailboxEntry(server, POP3S, users[1]!, { after: 'delete' }),
        mailboxEntry(server, IMAPS, users[2]!, { after: 'seen' }),
      ],
    });
    const [a, b] = await Promise.all([
      finish(spawnMailpoll(['fetch', '--now', '--config', config, '--json'])),
      finish(spawnMailpoll(['fetch', '--now', '--config', config, '--json'])),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const ids = query<{ message_id: string }>(db, 'SELECT message_id FROM messages').map((r) => r.message_id);
    expect(ids.sort()).toEqual([...delivered].sort());
    // Each mailbox was polled by exactly one of the two; the other one said it skipped it.
    const summaries = [...JSON.parse(a.stdout).mailboxes, ...JSON.parse(b.stdout).mailboxes] as { mailbox: string; skipped?: string; stored: number }[];
    for (const name of ['0', '1', '2'].map((i) => mailboxEntry(server, i === '1' ? POP3S : IMAPS, users[Number(i)]!).name as string)) {
      const polls = summaries.filter((s) => s.mailbox === name);
      expect(polls).toHaveLength(2);
      // One process did all of it: polled concurrently, the two would have split the work.
      expect(polls.map((s) => s.stored).sort((x, y) => x - y)).toEqual([0, 40]);
    }
    expect(summaries.filter((s) => s.skipped !== undefined).length).toBeGreaterThanOrEqual(1);
    expect(query<{ n: number }>(db, "SELECT COUNT(*) AS n FROM receipts WHERE outcome <> 'stored'")[0]?.n).toBe(0);
    expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM mailbox_state WHERE lease_owner IS NOT NULL')[0]?.n).toBe(0);
  });
});

describe('failures are contained and visible', () => {
  it('wrong password, closed port and a silent server fail alone, quickly; the healthy mailbox fetches', async () => {
    const good = await newUser(server);
    await server.deliver(good.user, plainMessage());
    const silent = await silentServer();
    try {
      const dir = tempDir();
      const fast = { timeouts: { connect: '2s', command: '2s' } };
      const config = writeConfig(dir, {
        mailboxes: [
          { ...mailboxEntry(server, IMAPS, good, fast), name: 'wrong-password', password: 'nope-nope' },
          { ...mailboxEntry(server, IMAPS, good, fast), name: 'closed-port', host: '127.0.0.1', port: await closedPort() },
          { ...mailboxEntry(server, POP3S, good, fast), name: 'silent', host: '127.0.0.1', port: silent.port },
          { ...mailboxEntry(server, IMAPS, good, fast), name: 'silent-imap', host: '127.0.0.1', port: silent.port },
          { ...mailboxEntry(server, IMAPS, good), name: 'healthy' },
        ],
      });
      const started = Date.now();
      const run = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
      const elapsed = Date.now() - started;
      expect(run.code).toBe(1);
      expect(elapsed).toBeLessThan(15_000);
      const byName = new Map((JSON.parse(run.stdout).mailboxes as { mailbox: string; error: string }[]).map((s) => [s.mailbox, s]));
      expect(byName.get('healthy')).toMatchObject({ ok: true, stored: 1 });
      expect(byName.get('wrong-password')).toMatchObject({ ok: false, errorCode: 'AUTH' });
      expect(byName.get('closed-port')).toMatchObject({ ok: false, errorCode: 'CONNECTION' });
      expect(byName.get('silent')).toMatchObject({ ok: false, errorCode: 'TIMEOUT' });
      expect(byName.get('silent-imap')).toMatchObject({ ok: false });
      for (const name of ['wrong-password', 'closed-port', 'silent']) {
        expect(byName.get(name)?.error.split('\n')).toHaveLength(1);
      }
      expect(run.stdout + run.stderr).not.toContain('nope-nope');
    } finally {
      await silent.close();
    }
  });

  it('a failing mailbox backs off (growing), is shown by status, and a success resets it', async () => {
    const user = await newUser(server);
    await server.deliver(user.user, plainMessage());
    const dir = tempDir();
    const entry = { ...mailboxEntry(server, IMAPS, user), name: 'flaky', every: '1m' };
    const bad = writeConfig(dir, { mailboxes: [{ ...entry, password: 'wrong-wrong' }] }, 'bad.yaml');
    const good = writeConfig(dir, { database: 'mailpoll.db', mailboxes: [entry] }, 'good.yaml');
    type Status = { mailboxes: { lastAttemptAt: string; nextDueAt: string; consecutiveFailures: number; lastError: string | null; stored: number }[] };
    const status = async (file: string) => JSON.parse((await runMailpoll(['status', '--config', file, '--json'])).stdout) as Status;
    const waitMinutes = (s: Status) => (Date.parse(s.mailboxes[0]!.nextDueAt) - Date.parse(s.mailboxes[0]!.lastAttemptAt)) / 60_000;

    const waits: number[] = [];
    for (let i = 0; i < 3; i++) {
      expect((await runMailpoll(['fetch', '--now', '--config', bad])).code).toBe(1);
      const s = await status(bad);
      expect(s.mailboxes[0]).toMatchObject({ consecutiveFailures: i + 1 });
      expect(s.mailboxes[0]?.lastError).toMatch(/^AUTH: /);
      waits.push(waitMinutes(s));
    }
    expect(waits).toEqual([1, 2, 4]);

    // Not due: a plain `fetch` (as cron runs it) leaves it alone and exits 0 at once.
    const idle = await runMailpoll(['fetch', '--config', bad, '--json']);
    expect(idle.code).toBe(0);
    expect(JSON.parse(idle.stdout).mailboxes).toEqual([]);

    expect((await runMailpoll(['fetch', '--now', '--config', good])).code).toBe(0);
    const healed = await status(good);
    expect(healed.mailboxes[0]).toMatchObject({ consecutiveFailures: 0, lastError: null, stored: 1 });
    expect(waitMinutes(healed)).toBe(1);
    const text = await runMailpoll(['status', '--config', good]);
    expect(text.stdout).toMatch(/flaky: ok/);
    expect(text.stdout).toMatch(/database: 1 tickets, 1 messages/);
  });
});

describe('oversize policy', () => {
  it('skip (the default) leaves it on the server and reports it in status', async () => {
    const user = await newUser(server);
    await server.deliver(user.user, plainMessage({ subject: 'big' }, 'y'.repeat(30_000) + '\r\n'));
    const dir = tempDir();
    const config = writeConfig(dir, { mailboxes: [mailboxEntry(server, POP3S, user, { after: 'delete', maxMessageBytes: 10_000 })] });
    const run = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(JSON.parse(run.stdout).mailboxes[0]).toMatchObject({ ok: true, oversize: 1, stored: 0 });
    expect(await server.listMaildir(user.user)).toHaveLength(1);
    const status = JSON.parse((await runMailpoll(['status', '--config', config, '--json'])).stdout);
    expect(status.mailboxes[0]).toMatchObject({ oversize: 1 });
  });

  it.each([IMAPS, POP3S])('headers ($protocol) stores the header block, marked, and leaves the message on the server', async (variant) => {
    const user = await newUser(server);
    await server.deliver(user.user, plainMessage({ subject: 'huge scan' }, 'z'.repeat(30_000) + '\r\n'));
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, { database: db, mailboxes: [mailboxEntry(server, variant, user, { after: 'delete', maxMessageBytes: 10_000, oversize: 'headers' })] });
    const run = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(JSON.parse(run.stdout).mailboxes[0]).toMatchObject({ ok: true, oversize: 1 });
    const rows = query<{ subject: string; headers_only: number; raw_size: number }>(db, 'SELECT subject, headers_only, raw_size FROM messages');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ subject: 'huge scan', headers_only: 1 });
    expect(rows[0]!.raw_size).toBeLessThan(2_000);
    expect(await server.listMaildir(user.user)).toHaveLength(1);
    const again = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
    expect(JSON.parse(again.stdout).mailboxes[0]).toMatchObject({ oversize: 0, fetched: 0 });
  });
});
