import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runMailpoll, tempDir } from '../support/mailpoll.js';

/** Where a problem line points: FILE:LINE:COL: FIELD: ... */
const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

describe('mailpoll init', () => {
  it('writes a commented config (mode 0600) and its password file, which check accepts as written', async () => {
    const dir = tempDir();
    const file = join(dir, 'etc', 'mailpoll.yaml');
    const init = await runMailpoll(['init', file]);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain(`wrote ${file} (mode 0600)`);
    expect(readFileSync(file, 'utf8')).toMatch(/^# mailpoll configuration/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'etc', 'mailpoll.password')).mode & 0o777).toBe(0o600);

    const check = await runMailpoll(['check', '--config', file]);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/password: file .*mailpoll\.password \(readable, first line \d+ chars\)/);
    expect(check.stdout).toContain('ok: 1 mailbox, 1 password source resolved');
    // The placeholders are warnings, not errors.
    expect(check.stderr).toMatch(/warning: .*mailpoll\.yaml:\d+:\d+: mailboxes\[0\]\.passwordFile: .*placeholder/);
  });

  it('never overwrites an existing config without --force, and never an existing password file', async () => {
    const dir = tempDir();
    const file = join(dir, 'mailpoll.yaml');
    expect((await runMailpoll(['init'], { MAILPOLL_CONFIG: file })).code).toBe(0);
    writeFileSync(file, '# mine\n');
    writeFileSync(join(dir, 'mailpoll.password'), 'the-real-password\n');

    const again = await runMailpoll(['init', '--config', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already exists');
    expect(readFileSync(file, 'utf8')).toBe('# mine\n');

    const forced = await runMailpoll(['init', file, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/^# mailpoll configuration/);
    expect(readFileSync(join(dir, 'mailpoll.password'), 'utf8')).toBe('the-real-password\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});

describe('mailpoll check', () => {
  const config = (dir: string) => {
    const text = [
      'mailboxes:',
      '  - name: from-env',
      '    protocol: imap',
      '    host: mail.test',
      '    username: u',
      '    password: ${MAILPOLL_TEST_UNSET_VAR}',
      '  - name: from-set-env',
      '    protocol: imap',
      '    host: mail.test',
      '    username: u',
      '    password: ${MAILPOLL_TEST_SET_VAR}',
      '  - name: from-file',
      '    protocol: pop3',
      '    host: mail.test',
      '    username: u',
      '    passwordFile: no-such.password',
      '  - name: from-failing-command',
      '    protocol: pop3',
      '    host: mail.test',
      '    username: u',
      "    passwordCommand: echo out-$((40+2))-put; exit 3",
      '  - name: from-command',
      '    protocol: pop3',
      '    host: mail.test',
      '    username: u',
      "    passwordCommand: printf 'cmd-%s' $((6*7))-secret",
      '',
    ].join('\n');
    const file = join(dir, 'mailpoll.yaml');
    writeFileSync(file, text, { mode: 0o600 });
    return { file, text };
  };

  it('names file, line and field of each secret that cannot be resolved, exits 1, and prints no secret and no command output', async () => {
    const dir = tempDir();
    const { file, text } = config(dir);
    const run = await runMailpoll(['check', '--config', file], { MAILPOLL_TEST_SET_VAR: 'value-of-the-set-var' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${file}:${lineOf(text, 'MAILPOLL_TEST_UNSET_VAR')}:5: mailboxes[0].password: environment variable MAILPOLL_TEST_UNSET_VAR is not set`);
    expect(run.stderr).toContain(`${file}:${lineOf(text, 'no-such.password')}:5: mailboxes[2].passwordFile: cannot read ${join(dir, 'no-such.password')}: ENOENT`);
    expect(run.stderr).toContain(`${file}:${lineOf(text, 'exit 3')}:5: mailboxes[3].passwordCommand: the command exited with code 3`);
    expect(run.stderr).toContain('3 of 5 password sources cannot be resolved');
    // Resolved ones are shown masked, by length.
    expect(run.stdout).toContain('password: ${MAILPOLL_TEST_SET_VAR} (set, 20 chars)');
    expect(run.stdout).toMatch(/password: command printf .* \(ran, printed 13 chars\)/);
    const all = run.stdout + run.stderr;
    for (const secret of ['value-of-the-set-var', 'cmd-42-secret', 'out-42-put']) expect(all).not.toContain(secret);

    const json = await runMailpoll(['check', '--config', file, '--json'], { MAILPOLL_TEST_SET_VAR: 'value-of-the-set-var' });
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { ok: boolean; problems: { field: string; line: number }[] };
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => [p.field, p.line])).toEqual([
      ['mailboxes[0].password', lineOf(text, 'MAILPOLL_TEST_UNSET_VAR')],
      ['mailboxes[2].passwordFile', lineOf(text, 'no-such.password')],
      ['mailboxes[3].passwordCommand', lineOf(text, 'exit 3')],
    ]);
    for (const secret of ['value-of-the-set-var', 'cmd-42-secret', 'out-42-put']) expect(json.stdout + json.stderr).not.toContain(secret);
  });

  it('exits 0 once every secret resolves', async () => {
    const dir = tempDir();
    const { file, text } = config(dir);
    writeFileSync(file, text.replace(/\n  - name: from-failing-command[\s\S]*?(?=\n  - name: from-command)/, ''));
    writeFileSync(join(dir, 'no-such.password'), 'file-secret\n', { mode: 0o600 });
    const run = await runMailpoll(['check', '--config', file], { MAILPOLL_TEST_SET_VAR: 'x1234', MAILPOLL_TEST_UNSET_VAR: 'y1234' });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('ok: 4 mailboxes, 4 password sources resolved');
    expect(run.stdout).not.toContain('file-secret');
  });

  it('exits 2 on a config error, naming file, line and field (also with --json)', async () => {
    const dir = tempDir();
    const file = join(dir, 'mailpoll.yaml');
    writeFileSync(file, ['mailboxes:', '  - name: x', '    protocol: imap', '    host: h', '    port: high', '    username: u', '    password: p', ''].join('\n'));
    const run = await runMailpoll(['check', '--config', file]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${file}:5:5: mailboxes[0].port:`);
    const json = await runMailpoll(['check', '--config', file, '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, problems: [{ file, line: 5, field: 'mailboxes[0].port' }] });
    expect(existsSync(join(dir, 'mailpoll.db'))).toBe(false);
  });
});
