/**
 * OAuth2 pieces that need no mail server: the XOAUTH2 payload, the cache expiry decision, config
 * validation, the token endpoint flows against a fake fetch with a real (in-memory) database, and
 * POP3 AUTH XOAUTH2 against a scripted fake server. Dovecot proves the rest (test/integration/oauth2).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { obtainAccessToken, forgetAccessToken, tokenIsFresh, parseTokenAnswer } from '../../src/auth/oauth2.js';
import { describeOAuthChallenge, xoauth2Response } from '../../src/auth/sasl.js';
import { parseConfig } from '../../src/config/load.js';
import type { MailboxConfig, OAuth2Source } from '../../src/config/types.js';
import { AuthError, ConfigError, TokenError } from '../../src/errors.js';
import { Pop3Client } from '../../src/sources/pop3/client.js';
import { openDatabase, type Db } from '../../src/store/database.js';

const FILE = '/etc/mailpoll/mailpoll.yaml';

describe('xoauth2Response', () => {
  it('is base64 of user=U ^A auth=Bearer T ^A ^A', () => {
    const b64 = xoauth2Response('alice@example.org', 'ya29.token');
    expect(Buffer.from(b64, 'base64').toString('utf8')).toBe('user=alice@example.org\x01auth=Bearer ya29.token\x01\x01');
    // The example of Google's XOAUTH2 documentation.
    expect(xoauth2Response('someuser@example.com', 'ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg'))
      .toBe('dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==');
  });

  it('reads the base64 JSON error challenge', () => {
    const challenge = Buffer.from('{"status":"401","schemes":"bearer"}').toString('base64');
    expect(describeOAuthChallenge(challenge)).toBe('status=401, schemes=bearer');
    expect(describeOAuthChallenge('')).toBeUndefined();
    expect(describeOAuthChallenge('not base64!')).toBeUndefined();
  });
});

describe('tokenIsFresh', () => {
  const issued = '2024-01-01T00:00:00.000Z';
  const at = (iso: string) => new Date(iso);
  it('reuses a 1-hour token until 5 minutes before expiry', () => {
    const expires = '2024-01-01T01:00:00.000Z';
    expect(tokenIsFresh(expires, issued, at('2024-01-01T00:54:59.000Z'))).toBe(true);
    expect(tokenIsFresh(expires, issued, at('2024-01-01T00:55:00.000Z'))).toBe(false);
    expect(tokenIsFresh(expires, issued, at('2024-01-01T01:30:00.000Z'))).toBe(false);
  });
  it('uses 10% of the lifetime when that is less than 5 minutes', () => {
    const expires = '2024-01-01T00:10:00.000Z'; // 10 minutes: replaced after 9
    expect(tokenIsFresh(expires, issued, at('2024-01-01T00:08:59.000Z'))).toBe(true);
    expect(tokenIsFresh(expires, issued, at('2024-01-01T00:09:00.000Z'))).toBe(false);
  });
  it('never reuses a token without a known expiry', () => {
    expect(tokenIsFresh(null, issued, at(issued))).toBe(false);
    expect(tokenIsFresh('garbage', issued, at(issued))).toBe(false);
  });
});

describe('oauth2 config', () => {
  const mailbox = (oauth2: string, extra = '') =>
    `mailboxes:\n  - name: m365\n    protocol: imap\n    host: outlook.office365.com\n    username: support@example.org\n${extra}    oauth2:\n${oauth2}`;
  const problems = (text: string) => {
    try {
      parseConfig(text, FILE);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.map((p) => ({ line: p.line, field: p.field, message: p.message }));
      throw err;
    }
    return [];
  };

  it('normalises client credentials (Microsoft 365 app-only)', () => {
    const config = parseConfig(
      mailbox('      tokenUrl: https://login.microsoftonline.com/TENANT/oauth2/v2.0/token\n      clientId: abc\n      clientSecretFile: secret.txt\n      scope: https://outlook.office365.com/.default\n'),
      FILE,
    );
    const m = config.mailboxes[0] as MailboxConfig;
    expect(m.password).toBeUndefined();
    expect(m.oauth2).toEqual({
      mechanism: 'xoauth2',
      source: {
        kind: 'clientCredentials',
        tokenUrl: 'https://login.microsoftonline.com/TENANT/oauth2/v2.0/token',
        clientId: 'abc',
        clientSecret: { kind: 'file', path: '/etc/mailpoll/secret.txt' },
        scope: 'https://outlook.office365.com/.default',
      },
    });
  });

  it('normalises tokenCommand, tokenFile and the refresh-token flow', () => {
    expect(parseConfig(mailbox('      tokenCommand: get-token support\n      mechanism: oauthbearer\n'), FILE).mailboxes[0]?.oauth2)
      .toEqual({ mechanism: 'oauthbearer', source: { kind: 'tokenCommand', token: { kind: 'command', command: 'get-token support' } } });
    expect(parseConfig(mailbox('      tokenFile: token.txt\n'), FILE).mailboxes[0]?.oauth2?.source)
      .toEqual({ kind: 'tokenFile', token: { kind: 'file', path: '/etc/mailpoll/token.txt' } });
    expect(parseConfig(mailbox('      tokenUrl: https://oauth2.googleapis.com/token\n      clientId: id\n      clientSecret: ${CS}\n      refreshToken: ${RT}\n'), FILE).mailboxes[0]?.oauth2?.source)
      .toEqual({ kind: 'refreshToken', tokenUrl: 'https://oauth2.googleapis.com/token', clientId: 'id', clientSecret: { kind: 'env', template: '${CS}' }, refreshToken: { kind: 'env', template: '${RT}' }, scope: undefined });
  });

  it('refuses oauth2 next to a password, with file, line and field', () => {
    expect(problems(mailbox('      tokenFile: t\n', '    password: pw\n'))).toEqual([
      { line: 7, field: 'mailboxes[0].oauth2', message: 'set only one of password, oauth2' },
    ]);
  });

  it('says POP3 has only XOAUTH2', () => {
    const text = mailbox('      tokenFile: t\n      mechanism: oauthbearer\n').replace('protocol: imap', 'protocol: pop3');
    expect(problems(text)).toEqual([
      { line: 8, field: 'mailboxes[0].oauth2.mechanism', message: expect.stringContaining('POP3 logs in with AUTH XOAUTH2 only') },
    ]);
  });

  it('names the missing and conflicting pieces of a flow', () => {
    expect(problems(mailbox('      clientId: x\n      clientSecret: s\n'))).toEqual([
      { line: 7, field: 'mailboxes[0].oauth2.clientId', message: expect.stringContaining('tokenUrl is missing') },
    ]);
    expect(problems(mailbox('      tokenUrl: https://t/token\n      clientId: x\n'))).toEqual([
      { line: 8, field: 'mailboxes[0].oauth2.clientId', message: expect.stringContaining('no client secret and no refresh token') },
    ]);
    expect(problems(mailbox('      tokenFile: a\n      tokenCommand: b\n'))).toEqual([
      { line: 7, field: 'mailboxes[0].oauth2.tokenFile', message: 'set only one of tokenCommand, tokenFile' },
    ]);
    expect(problems(mailbox('      tokenFile: a\n      scope: b\n'))).toEqual([
      { line: 8, field: 'mailboxes[0].oauth2.scope', message: expect.stringContaining('belong to the token endpoint flows') },
    ]);
    expect(problems(mailbox('      mechanism: xoauth2\n'))).toEqual([
      { line: 6, field: 'mailboxes[0].oauth2', message: expect.stringContaining('no token source') },
    ]);
    expect(problems(mailbox('      tokenFile: a\n      bogus: 1\n'))).toEqual([
      { line: 8, field: 'mailboxes[0].oauth2.bogus', message: 'unknown key' },
    ]);
  });

  it('requires https for the token endpoint except on loopback', () => {
    expect(problems(mailbox('      tokenUrl: http://idp.example.org/token\n      clientId: x\n      clientSecret: s\n'))).toEqual([
      { line: 7, field: 'mailboxes[0].oauth2.tokenUrl', message: expect.stringContaining('must use https://') },
    ]);
    expect(problems(mailbox('      tokenUrl: http://127.0.0.1:8080/token\n      clientId: x\n      clientSecret: s\n'))).toEqual([]);
  });
});

// ---- token endpoint flows ----------------------------------------------------------------------

interface Call {
  url: string;
  form: URLSearchParams;
}

function fakeFetch(answers: { status: number; body: unknown }[], calls: Call[]): typeof fetch {
  return (async (url: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(url), form: new URLSearchParams(String(init?.body)) });
    const next = answers.shift() ?? { status: 500, body: '' };
    return new Response(typeof next.body === 'string' ? next.body : JSON.stringify(next.body), { status: next.status });
  }) as typeof fetch;
}

describe('token endpoint flows', () => {
  let db: Db;
  afterEach(() => db?.close());
  const CC: OAuth2Source = {
    kind: 'clientCredentials',
    tokenUrl: 'https://idp.test/token',
    clientId: 'client-1',
    clientSecret: { kind: 'literal', value: 'client-secret-VALUE' },
    scope: 'https://outlook.office365.com/.default',
  };

  it('posts client credentials once and reuses the cached token until near expiry', async () => {
    db = openDatabase(':memory:');
    const calls: Call[] = [];
    let now = new Date('2024-01-01T00:00:00Z');
    const deps = () => ({ db, now: () => now, fetch: fakeFetch([
      { status: 200, body: { access_token: 'tok-1', expires_in: 3600, token_type: 'Bearer' } },
      { status: 200, body: { access_token: 'tok-2', expires_in: 3600, token_type: 'Bearer' } },
    ].slice(calls.length), calls) });
    expect(await obtainAccessToken('m', CC, deps())).toBe('tok-1');
    expect(calls[0]?.url).toBe('https://idp.test/token');
    expect(Object.fromEntries(calls[0]?.form ?? [])).toEqual({
      grant_type: 'client_credentials', client_id: 'client-1', client_secret: 'client-secret-VALUE', scope: 'https://outlook.office365.com/.default',
    });
    now = new Date('2024-01-01T00:50:00Z');
    expect(await obtainAccessToken('m', CC, deps())).toBe('tok-1');
    expect(calls).toHaveLength(1);
    now = new Date('2024-01-01T00:56:00Z');
    expect(await obtainAccessToken('m', CC, deps())).toBe('tok-2');
    expect(calls).toHaveLength(2);
    forgetAccessToken(db, 'm');
    await obtainAccessToken('m', CC, deps()).catch(() => undefined);
    expect(calls).toHaveLength(3);
  });

  it('keeps a rotated refresh token and uses it next time', async () => {
    db = openDatabase(':memory:');
    const source: OAuth2Source = { kind: 'refreshToken', tokenUrl: 'https://idp.test/token', clientId: 'c', clientSecret: undefined, refreshToken: { kind: 'literal', value: 'rt-original' }, scope: undefined };
    const calls: Call[] = [];
    const fetch1 = fakeFetch([{ status: 200, body: { access_token: 'a1', expires_in: 600, refresh_token: 'rt-rotated' } }], calls);
    expect(await obtainAccessToken('g', source, { db, fetch: fetch1, now: () => new Date('2024-01-01T00:00:00Z') })).toBe('a1');
    expect(calls[0]?.form.get('refresh_token')).toBe('rt-original');
    expect(calls[0]?.form.has('client_secret')).toBe(false);
    const fetch2 = fakeFetch([{ status: 200, body: { access_token: 'a2', expires_in: 600 } }], calls);
    expect(await obtainAccessToken('g', source, { db, fetch: fetch2, now: () => new Date('2024-01-01T01:00:00Z') })).toBe('a2');
    expect(calls[1]?.form.get('refresh_token')).toBe('rt-rotated');
    // Not rotated this time: the rotated one stays.
    expect(db.prepare('SELECT refresh_token FROM oauth_tokens WHERE mailbox = ?').get('g')).toEqual({ refresh_token: 'rt-rotated' });
  });

  it('takes the token another process refreshed meanwhile when the endpoint refuses the used refresh token', async () => {
    db = openDatabase(':memory:');
    const source: OAuth2Source = { kind: 'refreshToken', tokenUrl: 'https://idp.test/token', clientId: 'c', clientSecret: undefined, refreshToken: { kind: 'literal', value: 'rt-1' }, scope: undefined };
    const calls: Call[] = [];
    const at = new Date('2024-01-01T00:00:00Z');
    await obtainAccessToken('r', source, { db, now: () => at, fetch: fakeFetch([{ status: 200, body: { access_token: 'a1', expires_in: 600, refresh_token: 'rt-2' } }], calls) });
    const later = new Date('2024-01-01T01:00:00Z');
    // While this request is on its way, another process refreshes with rt-2 first and caches rt-3.
    const rotating = (async (url: string | URL | Request, init?: RequestInit) => {
      calls.push({ url: String(url), form: new URLSearchParams(String(init?.body)) });
      db.prepare("UPDATE oauth_tokens SET access_token = 'a-theirs', expires_at = ?, refreshed_at = ?, refresh_token = 'rt-3' WHERE mailbox = 'r'")
        .run(new Date(later.getTime() + 600_000).toISOString(), later.toISOString());
      return new Response(JSON.stringify({ error: 'invalid_grant', error_description: 'refresh token already used' }), { status: 400 });
    }) as typeof fetch;
    expect(await obtainAccessToken('r', source, { db, now: () => later, fetch: rotating })).toBe('a-theirs');
    expect(calls[1]?.form.get('refresh_token')).toBe('rt-2');

    // Refused with nothing newer in the cache: the refusal stands.
    const refused = fakeFetch([{ status: 400, body: { error: 'invalid_grant' } }], calls);
    forgetAccessToken(db, 'r');
    await expect(obtainAccessToken('r', source, { db, now: () => later, fetch: refused })).rejects.toThrow(/invalid_grant.*revoked or expired/);
  });

  it('quotes invalid_client and its description, never the client secret', async () => {
    const calls: Call[] = [];
    const err = await obtainAccessToken('m365', CC, {
      fetch: fakeFetch([{ status: 401, body: { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided. client-secret-VALUE' } }], calls),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenError);
    const message = (err as TokenError).message;
    expect((err as TokenError).code).toBe('TOKEN');
    expect((err as TokenError).mailbox).toBe('m365');
    expect(message).toContain('mailbox m365');
    expect(message).toContain('token endpoint answer');
    expect(message).toContain('HTTP 401');
    expect(message).toContain('invalid_client: AADSTS7000215');
    expect(message).not.toContain('client-secret-VALUE');
  });

  it('names the request step when the endpoint cannot be reached', async () => {
    const failing = (async () => {
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) });
    }) as typeof fetch;
    const err = (await obtainAccessToken('x', CC, { fetch: failing }).catch((e: unknown) => e)) as TokenError;
    expect(err.message).toMatch(/token endpoint request: POST https:\/\/idp\.test\/token failed: fetch failed: connect ECONNREFUSED/);
  });

  it('refuses answers without a usable token', () => {
    const answer = (status: number, body: unknown) => () => parseTokenAnswer('m', 'https://t', { status, body: typeof body === 'string' ? body : JSON.stringify(body) });
    expect(answer(200, '<html>')).toThrow(/without a JSON object/);
    expect(answer(200, { token_type: 'Bearer' })).toThrow(/without an access_token/);
    expect(answer(200, { access_token: 'x', token_type: 'mac' })).toThrow(/"mac" token/);
    expect(answer(400, { error: 'invalid_scope' })).toThrow(/invalid_scope.*outlook\.office365\.com\/\.default/);
    expect(answer(502, '')).toThrow(/HTTP 502\): an empty answer/);
    expect(answer(200, { access_token: 'x', expires_in: '3599' })().expiresInS).toBe(3599);
  });

  it('reads tokenFile and tokenCommand, naming the step on failure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailpoll-oauth-'));
    writeFileSync(join(dir, 'token'), 'file-token-123\n# comment\n');
    expect(await obtainAccessToken('m', { kind: 'tokenFile', token: { kind: 'file', path: join(dir, 'token') } })).toBe('file-token-123');
    expect(await obtainAccessToken('m', { kind: 'tokenCommand', token: { kind: 'command', command: 'echo cmd-token-456' } })).toBe('cmd-token-456');
    await expect(obtainAccessToken('m', { kind: 'tokenFile', token: { kind: 'file', path: join(dir, 'nope') } })).rejects.toThrow(/mailbox m: token file: cannot read .*nope: ENOENT/);
    await expect(obtainAccessToken('m', { kind: 'tokenCommand', token: { kind: 'command', command: 'echo oops >&2; exit 3' } })).rejects.toThrow(/token command: .* exited with code 3: oops/);
  });
});

// ---- POP3 AUTH XOAUTH2 ---------------------------------------------------------------------------

function pop3Mailbox(port: number): MailboxConfig {
  return {
    name: 'pop', protocol: 'pop3', host: '127.0.0.1', port,
    tls: { mode: 'none', caFile: undefined, insecureSkipVerify: false, allowPlaintext: true },
    username: 'alice', password: undefined, folder: 'INBOX', after: 'keep', moveTo: undefined,
    maxMessages: 10, maxMessageBytes: 1024 * 1024, maxBytes: 1024 * 1024, oversize: 'skip', everyMs: 60_000,
    healthWindowMs: undefined, idle: false, policy: { autoReplies: 'thread', bounces: 'thread' },
    timeouts: { connectMs: 3_000, commandMs: 3_000 },
  };
}

async function scriptedPop3(reply: (line: string, received: string[]) => string): Promise<{ port: number; received: string[]; close: () => void }> {
  const received: string[] = [];
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    let buffer = '';
    socket.write('+OK ready\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      for (let i = buffer.indexOf('\r\n'); i !== -1; i = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        received.push(line);
        socket.write(line === 'CAPA' ? '+OK\r\nSASL PLAIN XOAUTH2\r\nUIDL\r\n.\r\n' : reply(line, received));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { port, received, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

describe('POP3 AUTH XOAUTH2', () => {
  it('sends the response after the continuation and logs in', async () => {
    const token = 'T'.repeat(400);
    const server = await scriptedPop3((line) => (line === 'AUTH XOAUTH2' ? '+ \r\n' : line === xoauth2Response('alice', token) ? '+OK logged in\r\n' : '-ERR script\r\n'));
    try {
      const client = await Pop3Client.connect({ mailbox: pop3Mailbox(server.port) });
      await client.loginXoauth2('alice', token);
      expect(server.received).toEqual(['CAPA', 'AUTH XOAUTH2', xoauth2Response('alice', token)]);
      client.destroy();
    } finally {
      server.close();
    }
  });

  it('answers the error challenge with an empty line and reports the -ERR without the token', async () => {
    const token = 'short-tok';
    const challenge = Buffer.from('{"status":"401","schemes":"bearer"}').toString('base64');
    const server = await scriptedPop3((line) => (line.startsWith('AUTH XOAUTH2 ') ? `+ ${challenge}\r\n` : line === '' ? '-ERR [AUTH] Authentication failed.\r\n' : '-ERR script\r\n'));
    try {
      const client = await Pop3Client.connect({ mailbox: pop3Mailbox(server.port) });
      const err = (await client.loginXoauth2('alice', token).catch((e: unknown) => e)) as AuthError;
      expect(err).toBeInstanceOf(AuthError);
      expect(err.message).toContain('[AUTH] Authentication failed. (status=401, schemes=bearer)');
      expect(err.message).not.toContain(token);
      expect(server.received).toEqual(['CAPA', `AUTH XOAUTH2 ${xoauth2Response('alice', token)}`, '']);
      client.destroy();
    } finally {
      server.close();
    }
  });
});
