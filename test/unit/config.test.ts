import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError, type ConfigProblem } from '../../src/errors.js';

const FILE = '/etc/mailpoll/mailpoll.yaml';

function problems(text: string): ConfigProblem[] {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const VALID = `
database: data/tickets.db
defaults:
  maxMessages: 10
mailboxes:
  - name: support
    protocol: imap
    host: mail.example.com
    username: support@example.com
    password: \${SUPPORT_PASSWORD}
  - name: legacy
    protocol: pop3
    host: pop.example.com
    tls: starttls
    username: legacy
    passwordFile: secrets/legacy.txt
    after: delete
`;

describe('config', () => {
  it('normalises defaults, ports and paths', () => {
    const config = parseConfig(VALID, FILE);
    expect(config.database).toBe('/etc/mailpoll/data/tickets.db');
    const [support, legacy] = config.mailboxes;
    expect(support).toMatchObject({ port: 993, after: 'seen', folder: 'INBOX', maxMessages: 10, maxMessageBytes: 50 * 1024 * 1024 });
    expect(support?.password).toEqual({ kind: 'env', template: '${SUPPORT_PASSWORD}' });
    expect(support?.tls).toEqual({ mode: 'implicit', caFile: undefined, insecureSkipVerify: false, allowPlaintext: false });
    expect(legacy).toMatchObject({ port: 110, after: 'delete' });
    expect(legacy?.password).toEqual({ kind: 'file', path: '/etc/mailpoll/secrets/legacy.txt' });
  });

  it('defaults the database to mailpoll.db beside the config file', () => {
    expect(parseConfig(VALID.replace('database: data/tickets.db', ''), FILE).database).toBe('/etc/mailpoll/mailpoll.db');
  });

  it('names file, line and field for a wrong type', () => {
    const [p, ...rest] = problems(VALID.replace('host: pop.example.com', 'host: pop.example.com\n    port: "one hundred"'));
    expect(rest).toEqual([]);
    expect(p).toMatchObject({ file: FILE, line: 14, field: 'mailboxes[1].port' });
  });

  it('names the line of an unknown key (a typo is not silently ignored)', () => {
    const [p] = problems(VALID.replace('after: delete', 'afterr: delete'));
    expect(p).toMatchObject({ line: 17, field: 'mailboxes[1].afterr', message: 'unknown key' });
  });

  it('reports a missing field at the mailbox that lacks it', () => {
    const [p] = problems(VALID.replace('    host: mail.example.com\n', ''));
    expect(p).toMatchObject({ line: 6, field: 'mailboxes[0].host', message: 'missing required field' });
  });

  it('blames defaults for a bad inherited value', () => {
    const [p] = problems(VALID.replace('maxMessages: 10', 'maxMessages: -1'));
    expect(p).toMatchObject({ line: 4, field: 'defaults.maxMessages' });
  });

  it('refuses tls: none unless plaintext is accepted explicitly', () => {
    const [p] = problems(VALID.replace('tls: starttls', 'tls: none'));
    expect(p).toMatchObject({ line: 14, field: 'mailboxes[1].tls' });
    expect(p?.message).toMatch(/allowPlaintext/);
    const ok = parseConfig(VALID.replace('tls: starttls', 'tls: none\n    allowPlaintext: true'), FILE);
    expect(ok.mailboxes[1]?.tls.mode).toBe('none');
  });

  it('refuses IMAP-only actions on POP3 and move without a target', () => {
    expect(problems(VALID.replace('after: delete', 'after: seen'))[0]?.message).toMatch(/POP3 has no "seen"/);
    expect(problems(VALID.replace('password: ${SUPPORT_PASSWORD}', 'password: x\n    after: move'))[0]?.message).toMatch(/moveTo/);
    const broken = problems(VALID.replace('password: ${SUPPORT_PASSWORD}', 'password: x\n    after: move\n    moveTo: "Done\\r\\nA1 DELETE INBOX"'))[0];
    expect(broken).toMatchObject({ field: expect.stringMatching(/moveTo$/) });
    expect(broken?.message).toMatch(/line break/);
  });

  it('refuses duplicate mailbox names and two password sources', () => {
    expect(problems(VALID.replace('name: legacy', 'name: support'))[0]?.message).toMatch(/already the name/);
    expect(problems(VALID.replace('passwordFile: secrets/legacy.txt', 'passwordFile: a\n    password: b'))[0]?.field).toMatch(/password/);
  });

  it('reports YAML syntax errors with their line', () => {
    const [p] = problems('mailboxes:\n  - name: a\n   bad: [\n');
    expect(p?.line).toBeGreaterThan(0);
    expect(p?.field).toBe('(yaml)');
  });

  it('never puts a literal password into an error message', () => {
    const text = VALID.replace('password: ${SUPPORT_PASSWORD}', 'password: hunter2-secret\n    port: 0');
    const all = problems(text).map((p) => p.message).join('\n');
    expect(all).not.toContain('hunter2-secret');
  });
});

describe('config edge cases', () => {
  it('calls a wrong type a wrong type, not a missing field', () => {
    const [p] = problems(VALID.replace('host: pop.example.com', 'host: pop.example.com\n    allowPlaintext: "yes"'));
    expect(p?.field).toBe('mailboxes[1].allowPlaintext');
    expect(p?.message).not.toMatch(/missing/);
  });

  it('refuses a size of zero in any spelling', () => {
    expect(problems(VALID.replace('maxMessages: 10', 'maxMessageBytes: "0"'))[0]?.field).toBe('defaults.maxMessageBytes');
  });

  it('merges timeouts key by key with defaults', () => {
    const text = VALID.replace('maxMessages: 10', 'timeouts:\n    command: 10s').replace('after: delete', 'after: delete\n    timeouts:\n      connect: 5s');
    expect(parseConfig(text, FILE).mailboxes[1]?.timeouts).toEqual({ connectMs: 5_000, commandMs: 10_000 });
  });
});
