/**
 * OAuth2 logins against a real Dovecot whose oauth2 passdb validates bearer tokens through a small
 * HTTP endpoint started here (RFC 7662 introspection, `introspection_mode = post`). The same HTTP
 * server is the token endpoint of the client-credentials flow. Verified facts: DESIGN.md, end of
 * "Testing on real parts".
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { query, runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { mailboxEntry, newUser, type Variant } from '../support/scenario.js';

const CLIENT_SECRET = 'cc-Secret-' + randomBytes(8).toString('hex');

/** token -> user the introspection endpoint says it belongs to. */
const tokens = new Map<string, string>();
/** client_id -> user whose tokens it gets (client credentials). */
const clients = new Map<string, string>();
const tokenRequests: URLSearchParams[] = [];
const introspections: string[] = [];

let http: Server;
let httpPort = 0;
let server: DovecotServer;

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => resolve(data));
  });
}

beforeAll(async () => {
  http = createServer((req, res) => {
    void body(req).then((text) => {
      const form = new URLSearchParams(text);
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (req.url === '/introspect') {
        const token = form.get('token') ?? (req.headers.authorization ?? '').replace(/^Bearer /i, '');
        introspections.push(token);
        const user = tokens.get(token);
        return json(200, user === undefined ? { active: false } : { active: true, username: user });
      }
      if (req.url === '/token') {
        tokenRequests.push(form);
        const user = clients.get(form.get('client_id') ?? '');
        if (form.get('grant_type') !== 'client_credentials') return json(400, { error: 'unsupported_grant_type' });
        if (user === undefined || form.get('client_secret') !== CLIENT_SECRET) {
          return json(401, { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' });
        }
        const token = `cc-${randomBytes(12).toString('hex')}`;
        tokens.set(token, user);
        return json(200, { access_token: token, expires_in: 3600, token_type: 'Bearer' });
      }
      json(404, { error: 'not_found' });
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  httpPort = (http.address() as { port: number }).port;
  const argsFile = join(tempDir('mailpoll-oauth2-dovecot-'), 'oauth2.conf.ext');
  writeFileSync(
    argsFile,
    [
      `introspection_url = http://127.0.0.1:${httpPort}/introspect`,
      'introspection_mode = post',
      'username_attribute = username',
      'active_attribute = active',
      'active_value = true',
      '',
    ].join('\n'),
  );
  server = await startDovecot({
    extraConfig: `auth_mechanisms = plain login xoauth2 oauthbearer
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${argsFile}
}
`,
  });
});

afterAll(async () => {
  await server?.stop();
  if (http !== undefined) {
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  }
});

const IMAP: Variant = { protocol: 'imap', tls: 'starttls' };
const IMAPS: Variant = { protocol: 'imap', tls: 'implicit' };
const POP3: Variant = { protocol: 'pop3', tls: 'starttls' };

/** A mailbox entry logging in with `oauth2` instead of the user's password. */
function oauthEntry(v: Variant, user: { user: string; password: string }, oauth2: Record<string, unknown>): Record<string, unknown> {
  const { password: _password, ...entry } = mailboxEntry(server, v, user);
  return { ...entry, oauth2 };
}

interface Summary {
  ok: boolean;
  mailboxes: { ok: boolean; stored: number; fetched: number; errorCode?: string; error?: string }[];
}

async function fetchNow(config: string) {
  const run = await runMailpoll(['fetch', '--now', '--config', config, '--json']);
  let summary: Summary | undefined;
  try {
    summary = JSON.parse(run.stdout) as Summary;
  } catch {
    summary = undefined;
  }
  return { ...run, summary };
}

function newToken(user: string): string {
  const token = `tok-${randomBytes(16).toString('hex')}`;
  tokens.set(token, user);
  return token;
}

describe('IMAP XOAUTH2', () => {
  it('logs in with a token from tokenCommand and stores the mail', async () => {
    const user = await newUser(server, 'oa');
    const token = newToken(user.user);
    await server.deliver(user.user, plainMessage({ subject: 'oauth one' }));
    await server.deliver(user.user, plainMessage({ subject: 'oauth two' }));
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    const config = writeConfig(dir, { database: db, mailboxes: [oauthEntry(IMAP, user, { tokenCommand: `printf '%s\\n' ${token}` })] });

    const run = await fetchNow(config);
    expect(run.code, run.stderr + (await server.logTail(20))).toBe(0);
    expect(run.summary?.mailboxes[0]).toMatchObject({ ok: true, fetched: 2, stored: 2 });
    expect(run.stdout + run.stderr).not.toContain(token);
    expect(introspections).toContain(token);
    // mechanism defaults to xoauth2 although Dovecot offers OAUTHBEARER too (imapflow would prefer it).
    expect(await server.logTail(200)).toMatch(new RegExp(`Login: user=<${user.user}>, method=XOAUTH2`));
  });

  it('uses OAUTHBEARER when configured', async () => {
    const user = await newUser(server, 'ob');
    const token = newToken(user.user);
    await server.deliver(user.user, plainMessage({ subject: 'bearer' }));
    const dir = tempDir();
    const config = writeConfig(dir, { database: join(dir, 'm.db'), mailboxes: [oauthEntry(IMAPS, user, { tokenCommand: `echo ${token}`, mechanism: 'oauthbearer' })] });
    const run = await fetchNow(config);
    expect(run.code, run.stderr).toBe(0);
    expect(run.summary?.mailboxes[0]).toMatchObject({ ok: true, stored: 1 });
    expect(await server.logTail(200)).toMatch(new RegExp(`Login: user=<${user.user}>, method=OAUTHBEARER`));
  });

  it('gets a token by client credentials, caches it across runs, and `mailpoll test` reuses it', async () => {
    const user = await newUser(server, 'cc');
    const clientId = `client-${user.user}`;
    clients.set(clientId, user.user);
    await server.deliver(user.user, plainMessage({ subject: 'cc first' }));
    const dir = tempDir();
    const db = join(dir, 'mailpoll.db');
    writeFileSync(join(dir, 'client.secret'), `${CLIENT_SECRET}\n`, { mode: 0o600 });
    const config = writeConfig(dir, {
      database: db,
      mailboxes: [oauthEntry(IMAP, user, {
        tokenUrl: `http://127.0.0.1:${httpPort}/token`,
        clientId,
        clientSecretFile: 'client.secret',
        scope: 'https://outlook.office365.com/.default',
      })],
    });
    const before = tokenRequests.length;

    const first = await fetchNow(config);
    expect(first.code, first.stderr).toBe(0);
    expect(first.summary?.mailboxes[0]).toMatchObject({ ok: true, stored: 1 });
    await server.deliver(user.user, plainMessage({ subject: 'cc second' }));
    const second = await fetchNow(config);
    expect(second.code, second.stderr).toBe(0);
    expect(second.summary?.mailboxes[0]).toMatchObject({ ok: true, stored: 1 });

    const mine = tokenRequests.slice(before);
    expect(mine).toHaveLength(1);
    expect(Object.fromEntries(mine[0] ?? [])).toEqual({
      grant_type: 'client_credentials', client_id: clientId, client_secret: CLIENT_SECRET, scope: 'https://outlook.office365.com/.default',
    });
    const cached = query<{ access_token: string; expires_at: string }>(db, 'SELECT access_token, expires_at FROM oauth_tokens');
    expect(cached).toHaveLength(1);
    expect(tokens.get(cached[0]?.access_token ?? '')).toBe(user.user);

    const probe = await runMailpoll(['test', '--config', config]);
    expect(probe.code, probe.stdout + probe.stderr).toBe(0);
    expect(probe.stdout).toContain('login');
    expect(tokenRequests.slice(before)).toHaveLength(1);

    for (const run of [first, second, probe]) {
      expect(run.stdout + run.stderr).not.toContain(CLIENT_SECRET);
      expect(run.stdout + run.stderr).not.toContain(cached[0]?.access_token);
    }
  });
});

describe('POP3 XOAUTH2', () => {
  it('logs in with a token from tokenFile and stores the mail', async () => {
    const user = await newUser(server, 'op');
    const token = newToken(user.user);
    await server.deliver(user.user, plainMessage({ subject: 'pop oauth' }));
    const dir = tempDir();
    writeFileSync(join(dir, 'token'), `${token}\n`, { mode: 0o600 });
    const config = writeConfig(dir, { database: join(dir, 'm.db'), mailboxes: [oauthEntry(POP3, user, { tokenFile: 'token' })] });
    const run = await fetchNow(config);
    expect(run.code, run.stderr + (await server.logTail(20))).toBe(0);
    expect(run.summary?.mailboxes[0]).toMatchObject({ ok: true, fetched: 1, stored: 1 });
    expect(run.stdout + run.stderr).not.toContain(token);
    expect(await server.logTail(200)).toMatch(new RegExp(`pop3-login: Info: Login: user=<${user.user}>, method=XOAUTH2`));
  });
});

describe('failures', () => {
  it('an inactive token fails only that mailbox (AUTH, exit 1); the other mailbox is polled', async () => {
    const user = await newUser(server, 'bad');
    const good = await newUser(server, 'good');
    const goodToken = newToken(good.user);
    await server.deliver(good.user, plainMessage({ subject: 'still polled' }));
    const revoked = `revoked-${randomBytes(16).toString('hex')}`;
    const dir = tempDir();
    const config = writeConfig(dir, {
      database: join(dir, 'm.db'),
      mailboxes: [
        { ...oauthEntry(IMAP, user, { tokenCommand: `echo ${revoked}` }), name: 'revoked-imap' },
        { ...oauthEntry(POP3, user, { tokenCommand: `echo ${revoked}` }), name: 'revoked-pop3' },
        { ...oauthEntry(POP3, good, { tokenCommand: `echo ${goodToken}` }), name: 'good-pop3' },
      ],
    });
    const run = await fetchNow(config);
    expect(run.code, run.stderr).toBe(1);
    const [imap, pop3, ok] = run.summary?.mailboxes ?? [];
    expect(imap).toMatchObject({ ok: false, errorCode: 'AUTH' });
    expect(imap?.error).toMatch(/login as .* refused/);
    expect(pop3).toMatchObject({ ok: false, errorCode: 'AUTH' });
    expect(pop3?.error).toMatch(/refused the login/);
    expect(ok).toMatchObject({ ok: true, stored: 1 });
    expect(run.stdout + run.stderr).not.toContain(revoked);
    expect(run.stdout + run.stderr).not.toContain(goodToken);
  });

  it('invalid_client fails with the endpoint\'s words and the step, never the client secret', async () => {
    const user = await newUser(server, 'ic');
    const wrongSecret = `wrong-${CLIENT_SECRET}`;
    const dir = tempDir();
    const config = writeConfig(dir, {
      database: join(dir, 'm.db'),
      mailboxes: [oauthEntry(IMAP, user, { tokenUrl: `http://127.0.0.1:${httpPort}/token`, clientId: 'unknown-client', clientSecret: wrongSecret, scope: 's' })],
    });
    const run = await fetchNow(config);
    expect(run.code, run.stderr).toBe(1);
    const failed = run.summary?.mailboxes[0];
    expect(failed).toMatchObject({ ok: false, errorCode: 'TOKEN' });
    expect(failed?.error).toContain('token endpoint answer');
    expect(failed?.error).toContain('invalid_client');
    expect(failed?.error).toContain('AADSTS7000215');
    expect(failed?.error).toContain(`mailbox ${oauthEntry(IMAP, user, {}).name as string}`);
    expect(run.stdout + run.stderr).not.toContain(wrongSecret);
    expect(run.stdout + run.stderr).not.toContain(CLIENT_SECRET);
  });

  it('an unreachable token endpoint names the request step', async () => {
    const user = await newUser(server, 'ur');
    const dir = tempDir();
    const config = writeConfig(dir, {
      database: join(dir, 'm.db'),
      mailboxes: [oauthEntry(IMAP, user, { tokenUrl: 'http://127.0.0.1:1/token', clientId: 'c', clientSecret: CLIENT_SECRET })],
    });
    const run = await fetchNow(config);
    expect(run.code).toBe(1);
    expect(run.summary?.mailboxes[0]).toMatchObject({ ok: false, errorCode: 'TOKEN' });
    expect(run.summary?.mailboxes[0]?.error).toMatch(/token endpoint request: POST http:\/\/127\.0\.0\.1:1\/token failed/);
    expect(run.stdout + run.stderr).not.toContain(CLIENT_SECRET);
  });
});
