import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage, uniqueId } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { HttpDaemon, waitFor } from '../support/daemon-process.js';
import { query, runMailpoll, spawnMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser, type Variant } from '../support/scenario.js';

/**
 * The HTTP trigger of `mailpoll daemon --listen`, over real HTTP against the daemon as a child
 * process and a real Dovecot: the API key (Bearer, User-Agent), refusals, rate limiting, leases
 * shared with a cron `fetch`, and /health. Requires `npm run build` first.
 */
let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterEach(async () => {
  await HttpDaemon.killAll();
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

interface Summary {
  mailbox: string;
  ok: boolean;
  skipped?: string;
  stored: number;
  errorCode?: string;
  [key: string]: unknown;
}

const storedIds = (db: string) => query<{ message_id: string }>(db, 'SELECT message_id FROM messages').map((r) => r.message_id);
const polled = (db: string, mailbox: string) => {
  try {
    return query<{ n: number }>(db, 'SELECT polls_total AS n FROM mailbox_state WHERE mailbox = ?', mailbox)[0]?.n ?? 0;
  } catch {
    return 0; // no database yet
  }
};
const leaseOwner = (db: string, mailbox: string) => {
  try {
    return query<{ lease_owner: string | null }>(db, 'SELECT lease_owner FROM mailbox_state WHERE mailbox = ?', mailbox)[0]?.lease_owner ?? null;
  } catch {
    return null;
  }
};

async function deliverMany(user: string, n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = uniqueId(`${tag}${i}`);
    ids.push(id);
    await server.deliver(user, plainMessage({ messageId: id, subject: `${tag} ${i}` }));
  }
  return ids;
}

function assertExactlyOnce(db: string, delivered: readonly string[]): void {
  const ids = storedIds(db);
  expect(ids).toHaveLength(delivered.length);
  expect(new Set(ids)).toEqual(new Set(delivered));
  expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM receipts WHERE acknowledged_at IS NULL')[0]?.n).toBe(0);
  // Never fetched twice: a second poll of the same message would have left a duplicate receipt.
  expect(query<{ n: number }>(db, "SELECT COUNT(*) AS n FROM receipts WHERE outcome <> 'stored'")[0]?.n).toBe(0);
  expect(query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM mailbox_state WHERE lease_owner IS NOT NULL')[0]?.n).toBe(0);
}

/** A config whose mailboxes the daemon polls once at start (every: 1h), then only when triggered. */
function setup(entries: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  const dir = tempDir();
  const db = join(dir, 'mailpoll.db');
  const config = writeConfig(dir, { database: db, http: { apiKey: '${MAILPOLL_API_KEY}' }, mailboxes: entries, ...extra });
  return { dir, db, config };
}

describe('POST /fetch with the API key', () => {
  it('as a Bearer token and as wget --user-agent triggers a fetch whose messages land exactly once, with the JSON of fetch --json', async () => {
    const user = await newUser(server);
    const entry = mailboxEntry(server, IMAPS, user, { every: '1h' });
    const name = entry.name as string;
    const { db, config } = setup([entry]);
    const daemon = await HttpDaemon.start(config, ENV);
    await waitFor('the first poll', () => polled(db, name) === 1, 20_000, daemon);

    const first = await deliverMany(user.user, 5, 'bearer');
    const a = await daemon.request('POST', '/fetch?now=1', BEARER);
    expect(a.status, a.text).toBe(200);
    expect(a.headers['content-type']).toBe('application/json; charset=utf-8');
    const body = a.json<{ ok: boolean; mailboxes: Summary[] }>();
    expect(body.ok).toBe(true);
    expect(body.mailboxes).toHaveLength(1);
    expect(body.mailboxes[0]).toMatchObject({ mailbox: name, ok: true, stored: 5, fetched: 5 });

    // osTicket's habit: wget --user-agent=<key>, here with --post-data= to make it a POST.
    const second = await deliverMany(user.user, 3, 'wget');
    const wget = await promisify(execFile)('wget', ['-q', '-O', '-', `--user-agent=${KEY}`, '--post-data=', `http://127.0.0.1:${daemon.port}/fetch?mailbox=${encodeURIComponent(name)}&now=1`]);
    const viaWget = JSON.parse(wget.stdout) as { ok: boolean; mailboxes: Summary[] };
    expect(viaWget).toMatchObject({ ok: true, mailboxes: [{ mailbox: name, ok: true, stored: 3 }] });

    // Without now=1 only due mailboxes are polled: none is (every: 1h).
    const idle = await daemon.request('POST', '/fetch', BEARER);
    expect(idle.status).toBe(200);
    expect(idle.json()).toEqual({ ok: true, mailboxes: [] });

    // The same summary as `mailpoll fetch --json`: the same fields, the same shape.
    const third = await deliverMany(user.user, 1, 'cli');
    const cli = await runMailpoll(['fetch', '--now', '--json', '--config', config]);
    expect(cli.code, cli.stderr).toBe(0);
    const cliBody = JSON.parse(cli.stdout) as { ok: boolean; mailboxes: Summary[] };
    expect(Object.keys(cliBody)).toEqual(Object.keys(body));
    expect(Object.keys(cliBody.mailboxes[0] ?? {}).sort()).toEqual(Object.keys(body.mailboxes[0] ?? {}).sort());

    assertExactlyOnce(db, [...first, ...second, ...third]);
    expect(daemon.stderr).not.toContain(KEY);
    expect((await daemon.stop()).code, daemon.stderr).toBe(0);
  }, 90_000);

  it('answers 400 for an unknown mailbox or parameter, 405 for GET, 404 elsewhere, and polls nothing', async () => {
    const user = await newUser(server);
    const entry = mailboxEntry(server, POP3S, user, { every: '1h' });
    const { db, config } = setup([entry]);
    const daemon = await HttpDaemon.start(config, ENV);
    await waitFor('the first poll', () => polled(db, entry.name as string) === 1, 20_000, daemon);
    expect((await daemon.request('POST', '/fetch?mailbox=nope&now=1', BEARER)).status).toBe(400);
    expect((await daemon.request('POST', '/fetch?now=maybe', BEARER)).status).toBe(400);
    expect((await daemon.request('POST', `/fetch?now=1&key=${KEY}`, BEARER)).status).toBe(400);
    const get = await daemon.request('GET', '/fetch?now=1', BEARER);
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect((await daemon.request('POST', '/', BEARER)).status).toBe(404);
    expect(polled(db, entry.name as string)).toBe(1);
    expect((await daemon.stop()).code).toBe(0);
  }, 60_000);
});

describe('POST /fetch without the right key', () => {
  it('refuses a bad key, a missing key and the key in the wrong place with 401, triggers nothing, then blocks the address with 429', async () => {
    const user = await newUser(server);
    const entry = mailboxEntry(server, IMAPS, user, { every: '1h' });
    const name = entry.name as string;
    const { db, config } = setup([entry]);
    const daemon = await HttpDaemon.start(config, ENV);
    await waitFor('the first poll', () => polled(db, name) === 1, 20_000, daemon);
    await deliverMany(user.user, 2, 'refused');
    const stateBefore = query(db, 'SELECT * FROM mailbox_state WHERE mailbox = ?', name);

    const attempts: [string, string, Record<string, string>][] = [
      // The right key with its last two digits changed (never to themselves).
      ['a wrong Bearer key', '/fetch?now=1', { authorization: `Bearer ${KEY.slice(0, -2)}${KEY.endsWith('00') ? '11' : '00'}` }],
      ['no key at all', '/fetch?now=1', {}],
      ['the key in X-Api-Key', '/fetch?now=1', { 'x-api-key': KEY }],
      ['the key in the query string', `/fetch?now=1&key=${KEY}`, { 'user-agent': 'Wget/1.21.3' }],
      ['the key as Basic auth', '/fetch?now=1', { authorization: `Basic ${Buffer.from(`mailpoll:${KEY}`).toString('base64')}` }],
    ];
    const started = Date.now();
    for (const [what, path, headers] of attempts) {
      const answer = await daemon.request('POST', path, headers);
      expect(answer.status, what).toBe(401);
      expect(answer.headers['www-authenticate'], what).toBe('Bearer realm="mailpoll"');
      expect(answer.json(), what).toEqual({ error: 'unauthorized' });
    }
    // Failures after the first are answered more slowly: 250 + 500 + 1000 + 2000 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_700);

    // Five failures in a minute: now even the right key is not looked at.
    const blocked = await daemon.request('POST', '/fetch?now=1', BEARER);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);

    // Nothing was triggered: no message stored, the mailbox's record untouched.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(storedIds(db)).toEqual([]);
    expect(query(db, 'SELECT * FROM mailbox_state WHERE mailbox = ?', name)).toEqual(stateBefore);
    expect(daemon.logs().filter((l) => l.msg === 'HTTP request' && l.status === 401)).toHaveLength(5);
    expect(daemon.count('fetch triggered over HTTP')).toBe(0);
    expect(daemon.stderr).not.toContain(KEY);
    expect((await daemon.stop()).code).toBe(0);
  }, 60_000);

  it('will not start without an API key, with a short one, or with a bare port or a host name', async () => {
    const user = await newUser(server);
    const entry = mailboxEntry(server, IMAPS, user);
    const dir = tempDir();
    const noKey = writeConfig(dir, { database: join(dir, 'a.db'), mailboxes: [entry] }, 'no-key.yaml');
    const shortKey = writeConfig(dir, { database: join(dir, 'b.db'), http: { apiKey: 'short' }, mailboxes: [entry] }, 'short.yaml');
    const unsetEnv = writeConfig(dir, { database: join(dir, 'c.db'), http: { apiKey: '${MAILPOLL_TEST_UNSET_KEY}' }, mailboxes: [entry] }, 'unset.yaml');
    const cases: [string, string[], RegExp, number][] = [
      ['no http: in the config', ['--config', noKey, '--listen', '127.0.0.1:0'], /http\.apiKey: --listen needs an API key/, 2],
      ['a short key', ['--config', shortKey, '--listen', '127.0.0.1:0'], /shorter than 16 characters/, 2],
      ['an unset variable', ['--config', unsetEnv, '--listen', '127.0.0.1:0'], /http\.apiKey: environment variable MAILPOLL_TEST_UNSET_KEY is not set/, 1],
      ['a bare port', ['--config', shortKey, '--listen', '8025'], /--listen: a bare port is not accepted/, 2],
      ['a host name', ['--config', shortKey, '--listen', 'mail.example.com:8025'], /is not an IP address/, 2],
    ];
    for (const [what, args, message, code] of cases) {
      const run = await runMailpoll(['daemon', ...args], {}, 20_000);
      expect(run.code, `${what}\n${run.stderr}`).toBe(code);
      expect(run.stderr, what).toMatch(message);
    }
  }, 60_000);
});

describe('a trigger beside a cron fetch on one database', () => {
  it('never polls a mailbox twice: a trigger during the fetch answers 409, a fetch during the trigger skips it', async () => {
    const user = await newUser(server);
    // MAILPOLL_TEST_SLOW makes the password command, run inside the lease, hold it that long.
    const entry = mailboxEntry(server, IMAPS, user, {
      every: '1h',
      password: undefined,
      passwordCommand: `[ -z "$MAILPOLL_TEST_SLOW" ] || sleep "$MAILPOLL_TEST_SLOW"; printf %s '${user.password}'`,
    });
    const name = entry.name as string;
    const { db, config } = setup([entry]);
    const daemon = await HttpDaemon.start(config, { ...ENV, MAILPOLL_TEST_SLOW: '2' });
    await waitFor('the first poll', () => polled(db, name) === 1, 20_000, daemon);

    // A cron fetch holds the mailbox: the trigger is refused, nothing starts.
    const early = await deliverMany(user.user, 20, 'cron');
    const cron = spawnMailpoll(['fetch', '--now', '--json', '--config', config], { MAILPOLL_TEST_SLOW: '3' });
    let cronOut = '';
    cron.stdout?.on('data', (d: Buffer) => (cronOut += d.toString()));
    const cronDone = new Promise<number | null>((resolve) => cron.on('exit', (code) => resolve(code)));
    await waitFor('the cron fetch to lease the mailbox', () => (leaseOwner(db, name) ?? '').includes(`:${cron.pid}:`), 20_000);
    const refused = await daemon.request('POST', `/fetch?mailbox=${encodeURIComponent(name)}&now=1`, BEARER);
    expect(refused.status, refused.text).toBe(409);
    const conflict = refused.json<{ ok: boolean; error: string; busy: { mailbox: string }[] }>();
    expect(conflict.ok).toBe(false);
    expect(conflict.busy.map((b) => b.mailbox)).toEqual([name]);
    expect(conflict.error).toContain(name);
    expect(await cronDone).toBe(0);
    expect(JSON.parse(cronOut)).toMatchObject({ ok: true, mailboxes: [{ mailbox: name, stored: 20 }] });

    // The trigger holds the mailbox (its poll takes 2 s): a cron fetch now skips it.
    const late = await deliverMany(user.user, 10, 'trigger');
    const triggered = daemon.request('POST', '/fetch?now=1', BEARER);
    await waitFor('the trigger to lease the mailbox', () => (leaseOwner(db, name) ?? '').includes(`:${daemon.child.pid}:`), 20_000, daemon);
    const skipped = await runMailpoll(['fetch', '--now', '--json', '--config', config]);
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(JSON.parse(skipped.stdout)).toMatchObject({ ok: true, mailboxes: [{ mailbox: name, skipped: expect.stringContaining('in use by another run') }] });
    const answer = await triggered;
    expect(answer.status).toBe(200);
    expect(answer.json()).toMatchObject({ ok: true, mailboxes: [{ mailbox: name, ok: true, stored: 10 }] });

    assertExactlyOnce(db, [...early, ...late]);
    expect((await daemon.stop()).code, daemon.stderr).toBe(0);
  }, 90_000);
});

describe('GET /health', () => {
  it('turns 503 naming the mailbox when its login starts failing, and 200 again once it recovers; no secrets, no error texts', async () => {
    const good = await newUser(server);
    const flaky = await newUser(server);
    // Names of their own: the default ones contain the user name, which /health must not show.
    const entries = [mailboxEntry(server, IMAPS, good, { name: 'helpdesk', every: '1h' }), mailboxEntry(server, POP3S, flaky, { name: 'sales', every: '1h' })];
    const [goodName, flakyName] = entries.map((e) => e.name as string) as [string, string];
    const { db, config } = setup(entries);
    const daemon = await HttpDaemon.start(config, ENV);
    await waitFor('the first polls', () => polled(db, goodName) === 1 && polled(db, flakyName) === 1, 20_000, daemon);

    // No key needed on loopback.
    const healthy = await daemon.request('GET', '/health');
    expect(healthy.status, healthy.text).toBe(200);
    expect(healthy.json()).toMatchObject({ ok: true, mailboxes: [{ name: goodName, ok: true, consecutiveFailures: 0, reason: null }, { name: flakyName, ok: true }] });

    // The password changes on the server: the next poll fails.
    await server.addUser(flaky.user, 'changed-on-the-server-1234');
    const failed = await daemon.request('POST', `/fetch?mailbox=${encodeURIComponent(flakyName)}&now=1`, BEARER);
    expect(failed.status).toBe(200); // the trigger worked; the mailbox did not
    expect(failed.json()).toMatchObject({ ok: false, mailboxes: [{ mailbox: flakyName, ok: false, errorCode: 'AUTH' }] });
    const sick = await daemon.request('GET', '/health');
    expect(sick.status).toBe(503);
    const report = sick.json<{ ok: boolean; mailboxes: { name: string; ok: boolean; reason: string | null; consecutiveFailures: number; lastSuccessAt: string | null }[] }>();
    expect(report.ok).toBe(false);
    expect(report.mailboxes.find((m) => m.name === goodName)).toMatchObject({ ok: true });
    expect(report.mailboxes.find((m) => m.name === flakyName)).toMatchObject({
      ok: false, consecutiveFailures: 1, reason: 'last poll failed (AUTH), 1 failure in a row', lastSuccessAt: expect.any(String),
    });
    // Only names, times, counts and codes: not the server's words, the host, the user or a password.
    const lastError = query<{ last_error: string }>(db, 'SELECT last_error FROM mailbox_state WHERE mailbox = ?', flakyName)[0]?.last_error ?? '';
    expect(lastError.length).toBeGreaterThan(6);
    for (const secret of [lastError.slice(6), server.host, flaky.user, flaky.password, good.password, KEY]) expect(sick.text).not.toContain(secret);

    // HEAD works too (uptime checkers), with the same status and no body.
    const head = await daemon.request('HEAD', '/health');
    expect([head.status, head.text]).toEqual([503, '']);

    // Back to the old password: the next poll succeeds and /health is 200 again.
    await server.addUser(flaky.user, flaky.password);
    const recovered = await daemon.request('POST', `/fetch?mailbox=${encodeURIComponent(flakyName)}&now=1`, BEARER);
    expect(recovered.json()).toMatchObject({ ok: true });
    const again = await daemon.request('GET', '/health');
    expect(again.status, again.text).toBe(200);
    expect(again.json()).toMatchObject({ ok: true });
    expect((await daemon.stop()).code).toBe(0);
  }, 90_000);
});

describe('listening beyond loopback', () => {
  it('takes the address written out, warns, and then asks the key for /health and /metrics too', async () => {
    const user = await newUser(server);
    const { db, config } = setup([mailboxEntry(server, IMAPS, user, { name: 'wide', every: '1h' })]);
    const daemon = await HttpDaemon.start(config, ENV, ['--listen', '0.0.0.0:0']); // the later --listen wins
    await waitFor('the first poll', () => polled(db, 'wide') === 1, 20_000, daemon);
    expect(daemon.count('the HTTP trigger listens beyond this machine: /health and /metrics require the API key too, and plain HTTP carries the key in clear text; put a TLS reverse proxy in front or listen on 127.0.0.1')).toBe(1);
    for (const path of ['/health', '/metrics']) {
      const open = await daemon.request('GET', path);
      expect(open.status, path).toBe(401);
      expect(open.text, path).not.toContain('wide');
      expect((await daemon.request('GET', path, BEARER)).status, path).toBe(200);
    }
    expect((await daemon.stop()).code).toBe(0);
  }, 60_000);
});

describe('SIGTERM during a triggered fetch', () => {
  it('still answers the request, releases the lease and exits 0', async () => {
    const user = await newUser(server);
    const entry = mailboxEntry(server, POP3S, user, {
      name: 'slow',
      every: '1h',
      password: undefined,
      passwordCommand: `[ -z "$MAILPOLL_TEST_SLOW" ] || sleep "$MAILPOLL_TEST_SLOW"; printf %s '${user.password}'`,
    });
    const { db, config } = setup([entry]);
    const daemon = await HttpDaemon.start(config, { ...ENV, MAILPOLL_TEST_SLOW: '1' });
    await waitFor('the first poll', () => polled(db, 'slow') === 1, 20_000, daemon);
    const ids = await deliverMany(user.user, 3, 'term');
    const answer = daemon.request('POST', '/fetch?now=1', BEARER);
    await waitFor('the trigger to lease the mailbox', () => leaseOwner(db, 'slow') !== null, 10_000, daemon);
    const stopped = daemon.stop();
    const reply = await answer;
    expect(reply.status).toBe(200);
    expect(reply.json()).toMatchObject({ ok: true, mailboxes: [{ mailbox: 'slow' }] });
    expect((await stopped).code, daemon.stderr).toBe(0);
    expect(daemon.count('HTTP trigger closed')).toBe(1);
    expect(leaseOwner(db, 'slow')).toBeNull();
    // Whatever the interrupted poll did not take, the next run does, exactly once.
    const rest = await runMailpoll(['fetch', '--now', '--config', config]);
    expect(rest.code, rest.stderr).toBe(0);
    assertExactlyOnce(db, ids);
  }, 60_000);
});
