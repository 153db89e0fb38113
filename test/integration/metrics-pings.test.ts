import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage, uniqueId } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { HttpDaemon, waitFor } from '../support/daemon-process.js';
import { BIN, query, runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { parsePrometheusText, sampleValue, type ParsedFamily } from '../support/prometheus-text.js';
import { mailboxEntry, newUser, type Variant } from '../support/scenario.js';

/**
 * /metrics and `fetch --metrics-file` against the database they report on, and dead-man pings to
 * a local endpoint, on a real Dovecot with mailpoll as child processes. Requires `npm run build`.
 */
let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await HttpDaemon.killAll();
  for (const close of closers.splice(0)) await close();
});
afterAll(async () => {
  await HttpDaemon.killAll();
  await server?.stop();
});

const IMAPS: Variant = { protocol: 'imap', tls: 'implicit' };
const POP3S: Variant = { protocol: 'pop3', tls: 'implicit' };
const KEY = randomBytes(24).toString('hex');
const ENV = { MAILPOLL_API_KEY: KEY };
const BEARER = { authorization: `Bearer ${KEY}` };

/** The per-mailbox families; every one must be in each metrics text. */
const MAILBOX_FAMILIES = [
  'mailpoll_polls_total', 'mailpoll_poll_failures_total', 'mailpoll_messages_stored_total', 'mailpoll_duplicates_total',
  'mailpoll_oversize_total', 'mailpoll_quarantined', 'mailpoll_bytes_fetched_total', 'mailpoll_consecutive_failures',
  'mailpoll_seconds_since_last_success', 'mailpoll_last_success_timestamp_seconds', 'mailpoll_last_poll_duration_seconds',
  'mailpoll_mailbox_healthy',
];

/** Every counter and gauge of each mailbox equals what the database says. */
function expectMetricsMatchDatabase(families: Map<string, ParsedFamily>, db: string, mailboxes: readonly string[]): void {
  for (const name of MAILBOX_FAMILIES) expect(families.has(name), name).toBe(true);
  for (const mailbox of mailboxes) {
    const l = { mailbox };
    const state = query<{ polls_total: number; poll_failures_total: number; bytes_fetched_total: number; consecutive_failures: number; last_poll_duration_ms: number; last_success_at: string | null }>(
      db, 'SELECT * FROM mailbox_state WHERE mailbox = ?', mailbox,
    )[0];
    const receipts = (outcome: string) => query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM receipts WHERE mailbox = ? AND outcome = ?', mailbox, outcome)[0]?.n;
    const messages = query<{ n: number; bytes: number | null }>(db, 'SELECT COUNT(*) AS n, SUM(raw_size) AS bytes FROM messages WHERE mailbox = ?', mailbox)[0];
    const quarantined = query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM message_failures WHERE mailbox = ? AND quarantined_at IS NOT NULL', mailbox)[0]?.n;
    expect(sampleValue(families, 'mailpoll_polls_total', l), mailbox).toBe(state?.polls_total);
    expect(sampleValue(families, 'mailpoll_poll_failures_total', l), mailbox).toBe(state?.poll_failures_total);
    expect(sampleValue(families, 'mailpoll_messages_stored_total', l), mailbox).toBe(receipts('stored'));
    expect(sampleValue(families, 'mailpoll_messages_stored_total', l), mailbox).toBe(messages?.n);
    expect(sampleValue(families, 'mailpoll_duplicates_total', l), mailbox).toBe(receipts('duplicate'));
    expect(sampleValue(families, 'mailpoll_oversize_total', l), mailbox).toBe(receipts('oversize'));
    expect(sampleValue(families, 'mailpoll_quarantined', l), mailbox).toBe(quarantined);
    expect(sampleValue(families, 'mailpoll_bytes_fetched_total', l), mailbox).toBe(state?.bytes_fetched_total);
    expect(sampleValue(families, 'mailpoll_consecutive_failures', l), mailbox).toBe(state?.consecutive_failures);
    expect(sampleValue(families, 'mailpoll_last_poll_duration_seconds', l), mailbox).toBe((state?.last_poll_duration_ms ?? NaN) / 1000);
    if (state?.last_success_at) {
      expect(sampleValue(families, 'mailpoll_last_success_timestamp_seconds', l), mailbox).toBe(Date.parse(state.last_success_at) / 1000);
    }
  }
}

function setup(entries: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  const dir = tempDir();
  const db = join(dir, 'mailpoll.db');
  const config = writeConfig(dir, { database: db, http: { apiKey: '${MAILPOLL_API_KEY}' }, mailboxes: entries, ...extra });
  return { dir, db, config };
}

async function deliverMany(user: string, n: number, tag: string): Promise<{ ids: string[]; bytes: number }> {
  const ids: string[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const id = uniqueId(`${tag}${i}`);
    ids.push(id);
    const raw = plainMessage({ messageId: id, subject: `${tag} ${i}` }, `body ${i}\r\n${'lorem ipsum '.repeat(i * 10)}\r\n`);
    bytes += raw.length;
    await server.deliver(user, raw);
  }
  return { ids, bytes };
}

describe('GET /metrics', () => {
  it('parses as Prometheus text and its counters match the database, across the daemon, cron runs and a restart', async () => {
    const a = await newUser(server);
    const b = await newUser(server);
    const c = await newUser(server);
    const entries = [
      mailboxEntry(server, IMAPS, a, { name: 'alpha', every: '1h' }),
      mailboxEntry(server, POP3S, b, { name: 'beta "quoted" \\ name', every: '1h' }),
      mailboxEntry(server, IMAPS, c, { name: 'gamma', every: '1h', password: 'wrong-password-1234' }),
    ];
    const names = entries.map((e) => e.name as string);
    const { db, config, dir } = setup(entries);
    const daemon = await HttpDaemon.start(config, ENV);
    await waitFor('the first polls', () => {
      try {
        return query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM mailbox_state WHERE polls_total = 1')[0]?.n === 3;
      } catch {
        return false;
      }
    }, 20_000, daemon);

    // Mail for alpha; one of its messages also reaches beta (a duplicate there).
    const sent = await deliverMany(a.user, 6, 'metrics');
    const shared = plainMessage({ messageId: uniqueId('shared'), subject: 'to both' });
    await server.deliver(a.user, shared);
    await server.deliver(b.user, shared);
    await deliverMany(b.user, 2, 'beta');
    // alpha first, so that the shared message is stored from alpha and is beta's duplicate.
    expect((await daemon.request('POST', '/fetch?mailbox=alpha&now=1', BEARER)).json()).toMatchObject({ ok: true });
    const trig = await daemon.request('POST', '/fetch?now=1', BEARER);
    expect(trig.json()).toMatchObject({ ok: false }); // gamma's password is wrong

    const answer = await daemon.request('GET', '/metrics');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const families = parsePrometheusText(answer.text);
    expectMetricsMatchDatabase(families, db, names);
    // The numbers themselves, not only their agreement with the database.
    expect(sampleValue(families, 'mailpoll_polls_total', { mailbox: 'alpha' })).toBe(3);
    expect(sampleValue(families, 'mailpoll_messages_stored_total', { mailbox: 'alpha' })).toBe(7);
    expect(sampleValue(families, 'mailpoll_bytes_fetched_total', { mailbox: 'alpha' })).toBe(sent.bytes + shared.length);
    expect(sampleValue(families, 'mailpoll_duplicates_total', { mailbox: names[1]! })).toBe(1);
    expect(sampleValue(families, 'mailpoll_messages_stored_total', { mailbox: names[1]! })).toBe(2);
    expect(sampleValue(families, 'mailpoll_poll_failures_total', { mailbox: 'gamma' })).toBe(2);
    expect(sampleValue(families, 'mailpoll_mailbox_healthy', { mailbox: 'gamma' })).toBe(0);
    expect(sampleValue(families, 'mailpoll_mailbox_healthy', { mailbox: 'alpha' })).toBe(1);
    expect(sampleValue(families, 'mailpoll_seconds_since_last_success', { mailbox: 'gamma' })).toBe(Infinity);
    expect(sampleValue(families, 'mailpoll_seconds_since_last_success', { mailbox: 'alpha' })).toBeLessThan(30);
    expect(sampleValue(families, 'mailpoll_last_poll_duration_seconds', { mailbox: 'alpha' })).toBeGreaterThan(0);
    expect(sampleValue(families, 'process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
    expect(sampleValue(families, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(Math.abs((sampleValue(families, 'process_start_time_seconds') ?? 0) - Date.now() / 1000)).toBeLessThan(120);
    expect(answer.text).not.toContain('wrong-password');
    expect((await daemon.stop()).code).toBe(0);

    // A cron run without the daemon adds to the same counters; its metrics file agrees with them.
    await deliverMany(a.user, 2, 'cron');
    const prom = join(dir, 'mailpoll.prom');
    const cron = await runMailpoll(['fetch', '--now', '--config', config, '--metrics-file', prom]);
    expect(cron.code, cron.stderr).toBe(1); // gamma still fails
    const fromFile = parsePrometheusText(readFileSync(prom, 'utf8'));
    expectMetricsMatchDatabase(fromFile, db, names);
    expect(sampleValue(fromFile, 'mailpoll_polls_total', { mailbox: 'alpha' })).toBe(4);
    expect(sampleValue(fromFile, 'mailpoll_messages_stored_total', { mailbox: 'alpha' })).toBe(9);
    // node_exporter has process_* series of its own: the textfile must not carry any.
    expect([...fromFile.keys()].filter((n) => !n.startsWith('mailpoll_'))).toEqual([]);

    // A restarted daemon reports what the database holds, not a count from zero.
    const again = await HttpDaemon.start(config, ENV);
    const before = parsePrometheusText((await again.request('GET', '/metrics')).text);
    expectMetricsMatchDatabase(before, db, names);
    expect(sampleValue(before, 'mailpoll_polls_total', { mailbox: 'alpha' })).toBe(4);
    expect((await again.request('POST', '/fetch?mailbox=alpha&now=1', BEARER)).json()).toMatchObject({ ok: true });
    const after = parsePrometheusText((await again.request('GET', '/metrics')).text);
    expectMetricsMatchDatabase(after, db, names);
    expect(sampleValue(after, 'mailpoll_polls_total', { mailbox: 'alpha' })).toBe(5);
    expect((await again.stop()).code).toBe(0);
  }, 120_000);
});

describe('fetch --metrics-file', () => {
  it('is never seen half-written while many runs rewrite it', async () => {
    const users = [await newUser(server), await newUser(server)];
    const entries = users.map((u, i) => mailboxEntry(server, i === 0 ? IMAPS : POP3S, u, { name: `box${i}` }));
    const { config, dir } = setup(entries);
    const prom = join(dir, 'node-exporter', 'mailpoll.prom');
    mkdirSync(join(dir, 'node-exporter'));
    const first = await runMailpoll(['fetch', '--now', '--config', config, '--metrics-file', prom]);
    expect(first.code, first.stderr).toBe(0);

    // Three writers, each running fetch again and again (half of them with nothing due), while
    // this process reads the file as fast as it can.
    let writing = true;
    const writer = async (n: number) => {
      for (let i = 0; i < 8; i++) {
        const args = i % 2 === 0 ? ['fetch', '--now'] : ['fetch'];
        const run = await runMailpoll([...args, '--config', config, '--metrics-file', prom]);
        expect(run.code, run.stderr).toBe(0);
        if (i % 3 === n % 3) await server.deliver(users[i % 2]!.user, plainMessage({ messageId: uniqueId('tf') }));
      }
    };
    let reads = 0;
    let failure: unknown;
    const reader = (async () => {
      while (writing) {
        const text = readFileSync(prom, 'utf8');
        const families = parsePrometheusText(text); // throws on a truncated text
        for (const name of MAILBOX_FAMILIES) {
          if (!families.has(name)) throw new Error(`read ${reads}: ${name} missing from\n${text}`);
        }
        expect(families.get('mailpoll_mailbox_healthy')?.samples).toHaveLength(2);
        reads += 1;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })().catch((err: unknown) => {
      failure = err;
    });
    try {
      await Promise.all([writer(0), writer(1), writer(2)]);
    } finally {
      writing = false;
      await reader;
    }
    if (failure !== undefined) throw failure;
    expect(reads).toBeGreaterThan(100);
    // Nothing left behind but the file itself (no PATH.tmp-PID).
    expect(readdirSync(join(dir, 'node-exporter'))).toEqual(['mailpoll.prom']);
  }, 180_000);

  it('a file that cannot be written fails the run (exit 1) after the fetch itself', async () => {
    const user = await newUser(server);
    const { config, dir, db } = setup([mailboxEntry(server, IMAPS, user)]);
    await server.deliver(user.user, plainMessage({ messageId: uniqueId('nodir') }));
    const run = await runMailpoll(['fetch', '--now', '--config', config, '--metrics-file', join(dir, 'missing-dir', 'x.prom')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('cannot write the metrics file');
    expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM messages')[0]?.n).toBe(1);
  }, 60_000);
});

interface Ping {
  method: string | undefined;
  path: string | undefined;
  body: string;
}

/** A healthchecks.io stand-in on 127.0.0.1 recording every request. */
async function pingEndpoint(): Promise<{ url: string; pings: Ping[] }> {
  const pings: Ping[] = [];
  const srv: Server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      pings.push({ method: req.method, path: req.url, body });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  closers.push(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, pings };
}

/** A server that accepts connections and never answers: a hung monitoring service. */
async function deadEndpoint(): Promise<{ url: string; connections: () => number }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const srv: TcpServer = createTcpServer((s) => {
    connections += 1;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, connections: () => connections };
}

/** `mailpoll fetch`, timed from spawn to exit. */
async function timedFetch(args: string[]): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, 'fetch', ...args], { env: { ...process.env, MAILPOLL_CONFIG: undefined }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, stderr, ms: Date.now() - started };
}

describe('dead-man pings', () => {
  it('reach the success URL after a good run and the /fail URL after a failed one, without the URL in any log', async () => {
    const endpoint = await pingEndpoint();
    const check = randomUUID();
    const good = await newUser(server);
    const bad = await newUser(server);
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const success = `${endpoint.url}/ping/${check}`;
    const goodOnly = writeConfig(dir, { database: db, pings: { success }, mailboxes: [mailboxEntry(server, IMAPS, good, { name: 'good' })] }, 'good.yaml');
    const withBad = writeConfig(dir, {
      database: db,
      pings: { success },
      mailboxes: [mailboxEntry(server, IMAPS, good, { name: 'good' }), mailboxEntry(server, POP3S, bad, { name: 'bad', password: 'not-the-password-42' })],
    }, 'bad.yaml');

    const ok = await runMailpoll(['fetch', '--now', '--config', goodOnly, '--log-level', 'debug']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(endpoint.pings).toEqual([{ method: 'POST', path: `/ping/${check}`, body: 'mailpoll: success\npolled: good ok (stored 0)\n' }]);

    const failed = await runMailpoll(['fetch', '--now', '--config', withBad, '--log-level', 'debug']);
    expect(failed.code).toBe(1);
    expect(endpoint.pings[1]).toEqual({ method: 'POST', path: `/ping/${check}/fail`, body: 'mailpoll: failure\npolled: good ok (stored 0), bad FAILED (AUTH)\nfailing: bad (AUTH)\n' });

    // Only "good" polled now, but "bad" is still failing: the check stays down (no flapping).
    const onlyGood = await runMailpoll(['fetch', '--now', '--mailbox', 'good', '--config', withBad]);
    expect(onlyGood.code, onlyGood.stderr).toBe(0);
    expect(endpoint.pings[2]?.path).toBe(`/ping/${check}/fail`);

    // Nothing due, nothing polled: no ping (the check's period covers the quiet ticks).
    const quiet = await runMailpoll(['fetch', '--config', goodOnly]);
    expect(quiet.code).toBe(0);
    expect(endpoint.pings).toHaveLength(3);

    for (const run of [ok, failed, onlyGood]) expect(run.stderr).not.toContain(check);
    expect(ok.stderr).toContain('dead-man ping sent');
  }, 60_000);

  it('are sent by the daemon after its polls and after a triggered fetch', async () => {
    const endpoint = await pingEndpoint();
    const check = randomUUID();
    const user = await newUser(server);
    const { config } = setup([mailboxEntry(server, IMAPS, user, { name: 'one', every: '1h' })], { pings: { success: `${endpoint.url}/${check}`, failure: `${endpoint.url}/${check}/down` } });
    const daemon = await HttpDaemon.start(config, ENV);
    await waitFor('the ping after the first poll', () => endpoint.pings.length === 1, 20_000, daemon);
    expect(endpoint.pings[0]?.path).toBe(`/${check}`);
    // The password changes: a triggered fetch fails, and the verdict changed, so it pings at once.
    await server.addUser(user.user, 'another-password-77');
    await daemon.request('POST', '/fetch?now=1', BEARER);
    await waitFor('the failure ping', () => endpoint.pings.length === 2, 10_000, daemon);
    expect(endpoint.pings[1]?.path).toBe(`/${check}/down`);
    await server.addUser(user.user, user.password);
    expect(daemon.stderr).not.toContain(check);
    expect((await daemon.stop()).code).toBe(0);
  }, 60_000);

  it('to a dead endpoint do not slow a fetch beyond the ping timeout, nor fail it', async () => {
    const live = await pingEndpoint();
    const dead = await deadEndpoint();
    const user = await newUser(server);
    const dir = tempDir();
    const mailbox = mailboxEntry(server, IMAPS, user, { name: 'timed' });
    const toLive = writeConfig(dir, { database: join(dir, 'a.db'), pings: { success: `${live.url}/x`, timeout: '1s' }, mailboxes: [mailbox] }, 'live.yaml');
    const toDead = writeConfig(dir, { database: join(dir, 'b.db'), pings: { success: `${dead.url}/x`, timeout: '1s' }, mailboxes: [mailbox] }, 'dead.yaml');

    // Warm up once (first connections, file caches), then time each kind twice; compare the fastest.
    await timedFetch(['--now', '--config', toLive]);
    const liveRuns = [await timedFetch(['--now', '--config', toLive]), await timedFetch(['--now', '--config', toLive])];
    const deadRuns = [await timedFetch(['--now', '--config', toDead, '--log-level', 'info']), await timedFetch(['--now', '--config', toDead, '--log-level', 'info'])];
    for (const r of [...liveRuns, ...deadRuns]) expect(r.code, r.stderr).toBe(0);
    expect(dead.connections()).toBe(2);
    for (const r of deadRuns) expect(r.stderr).toContain('no answer within 1000 ms');
    const baseline = Math.min(...liveRuns.map((r) => r.ms));
    const slowest = Math.max(...deadRuns.map((r) => r.ms));
    // The dead endpoint costs the timeout (1 s) and not more; 700 ms of slack for process noise.
    expect(Math.min(...deadRuns.map((r) => r.ms))).toBeGreaterThanOrEqual(1_000);
    expect(slowest - baseline).toBeLessThan(1_000 + 700);
  }, 90_000);
});
