import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { PLACEHOLDER_PASSWORD, STARTER_PASSWORD_FILE, starterConfig } from '../../src/config/starter.js';
import { describeSecret, formatDuration, formatSize, maskedConfig, verifySecrets } from '../../src/config/verify.js';

const FILE = '/etc/mailpoll/mailpoll.yaml';

describe('the starter config of mailpoll init', () => {
  it('parses as written, with its password from the file init writes beside it', () => {
    const config = parseConfig(starterConfig('mailpoll.password'), FILE);
    expect(config.mailboxes).toHaveLength(1);
    expect(config.mailboxes[0]).toMatchObject({ name: 'support', protocol: 'imap', password: { kind: 'file', path: '/etc/mailpoll/mailpoll.password' } });
    expect(config.database).toBe('/etc/mailpoll/mailpoll.db');
  });

  it('quotes a password file name YAML would misread', () => {
    expect(parseConfig(starterConfig('my: box #1.password'), FILE).mailboxes[0]?.password).toEqual({ kind: 'file', path: '/etc/mailpoll/my: box #1.password' });
  });

  it('passes the secret check, with warnings for its placeholders', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailpoll-starter-'));
    const file = join(dir, 'mailpoll.yaml');
    const text = starterConfig('mailpoll.password');
    writeFileSync(file, text, { mode: 0o600 });
    writeFileSync(join(dir, 'mailpoll.password'), STARTER_PASSWORD_FILE, { mode: 0o600 });
    const { secrets, warnings } = await verifySecrets(parseConfig(text, file), text);
    expect(secrets.map((s) => s.ok)).toEqual([true]);
    expect(secrets[0]?.length).toBe(PLACEHOLDER_PASSWORD.length);
    expect(warnings.map((w) => w.field).sort()).toEqual(['mailboxes[0].host', 'mailboxes[0].passwordFile']);
  });
});

/** Each mailbox sets its own password key. */
const OWN = `mailboxes:
  - name: env
    protocol: imap
    host: mail.test
    username: u
    password: pre-\${A}-\${B}-\${C}
  - name: cmd
    protocol: pop3
    host: mail.test
    username: u
    passwordCommand: fetch-it
  - name: literal
    protocol: imap
    host: mail.test
    username: u
    password: Literal-Value-9
`;

/** The mailbox inherits its password key from defaults. */
const INHERITED = `defaults:
  passwordFile: shared.pw
mailboxes:
  - name: inherits
    protocol: imap
    host: mail.test
    username: u
`;

describe('verifySecrets', () => {
  it('locates an inherited secret on its defaults line', async () => {
    const result = await verifySecrets(parseConfig(INHERITED, FILE), INHERITED, {
      env: {},
      mode: async () => 0o600,
      resolve: async () => {
        throw new Error('cannot read passwordFile /etc/mailpoll/shared.pw: ENOENT');
      },
    });
    expect(result.secrets).toEqual([
      expect.objectContaining({ mailbox: 'inherits', field: 'defaults.passwordFile', line: 2, column: 3, ok: false, problem: 'cannot read passwordFile /etc/mailpoll/shared.pw: ENOENT' }),
    ]);
  });

  it('names every unset variable, the line and the field, and never the value of a set one', async () => {
    const cfg = parseConfig(OWN, FILE);
    const { secrets } = await verifySecrets(cfg, OWN, {
      env: { A: 'value-of-a' },
      mode: async () => 0o600,
      resolve: async (ref) => (ref.kind === 'command' ? 'from-the-command' : ref.kind === 'literal' ? ref.value : 'x'),
    });
    const env = secrets.find((s) => s.mailbox === 'env');
    expect(env).toMatchObject({ field: 'mailboxes[0].password', line: 6, ok: false, problem: 'environment variables B, C are not set' });
    expect(secrets.find((s) => s.mailbox === 'cmd')).toMatchObject({ field: 'mailboxes[1].passwordCommand', line: 11, ok: true, length: 16 });
    expect(JSON.stringify(secrets.map(({ ref: _r, ...rest }) => rest))).not.toMatch(/value-of-a|from-the-command|Literal-Value-9/);
  });

  it('refuses an empty variable or an empty first line, which would only fail at login', async () => {
    const cfg = parseConfig(OWN, FILE);
    const { secrets } = await verifySecrets(cfg, OWN, { env: { A: 'a', B: '', C: 'c' }, mode: async () => 0o600, resolve: async () => '' });
    expect(secrets.find((s) => s.mailbox === 'env')?.problem).toBe('environment variable B is set but empty');
    expect(secrets.find((s) => s.mailbox === 'cmd')?.problem).toBe('the password is empty');
  });

  it('warns about a secret others can read', async () => {
    const cfg = parseConfig(OWN, FILE);
    const { warnings } = await verifySecrets(cfg, OWN, { env: { A: 'a', B: 'b', C: 'c' }, mode: async () => 0o644, resolve: async () => 'pw' });
    expect(warnings).toEqual([expect.objectContaining({ field: 'mailboxes[2].password', line: 16, message: expect.stringMatching(/mode 0644/) })]);
  });
});

describe('masking', () => {
  it('describes each secret by its source and length, never its value', () => {
    expect(describeSecret({ kind: 'env', source: '${SUPPORT_PASSWORD}', ok: true, length: 14, problem: undefined })).toBe('${SUPPORT_PASSWORD} (set, 14 chars)');
    expect(describeSecret({ kind: 'env', source: '${X}', ok: false, length: undefined, problem: 'environment variable X is not set' })).toBe('${X} (environment variable X is not set)');
    expect(describeSecret({ kind: 'file', source: '/etc/pw', ok: true, length: 3, problem: undefined })).toBe('file /etc/pw (readable, first line 3 chars)');
    expect(describeSecret({ kind: 'command', source: 'pass x', ok: true, length: 9, problem: undefined })).toBe('command pass x (ran, printed 9 chars)');
    expect(describeSecret({ kind: 'literal', source: '***', ok: true, length: 9, problem: undefined })).toBe('*** (written in the config file, 9 chars)');
  });

  it('masks every secret reference in the printed config, also ones it was not asked to check', () => {
    const cfg = parseConfig(OWN, FILE);
    const withKey = { ...cfg, http: { apiKey: { kind: 'literal' as const, value: 'api-key-value' } } };
    const shown = JSON.stringify(maskedConfig(withKey, []));
    expect(shown).not.toContain('Literal-Value-9');
    expect(shown).not.toContain('api-key-value');
    expect(maskedConfig(withKey, [])).toMatchObject({ http: { apiKey: '***' } });
    expect((maskedConfig(cfg, []).mailboxes as unknown[])[0]).toMatchObject({ password: 'pre-${A}-${B}-${C}', every: '5m', maxMessageBytes: '50MB', timeouts: { connect: '30s', command: '2m' } });
  });

  it('shows only the host of a dead-man ping URL, whose path is the check\'s secret id', () => {
    const cfg = parseConfig(OWN, FILE);
    const pinged = { ...cfg, pings: { successUrl: 'https://hc-ping.com/0f3e9b1c-secret-uuid', failureUrl: 'https://hc-ping.com/0f3e9b1c-secret-uuid/fail', timeoutMs: 5000 } };
    const shown = JSON.stringify(maskedConfig(pinged, []));
    expect(shown).not.toContain('secret-uuid');
    expect(maskedConfig(pinged, [])).toMatchObject({ pings: { successUrl: 'https://hc-ping.com/***', failureUrl: 'https://hc-ping.com/***', timeout: '5s' } });
  });

  it('writes durations and sizes the way the config does', () => {
    expect([formatDuration(300_000), formatDuration(90_000), formatDuration(1500), formatDuration(86_400_000)]).toEqual(['5m', '90s', '1500ms', '1d']);
    expect([formatSize(50 * 1024 * 1024), formatSize(1536), formatSize(1000)]).toEqual(['50MB', '1536', '1000']);
  });
});
