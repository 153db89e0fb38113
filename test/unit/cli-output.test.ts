import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { failureLines, formatOutput, formatSummary } from '../../src/cli/fetch.js';
import { logSetup, openLogger } from '../../src/cli/log-setup.js';
import { runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';
import { formatBytes, formatProgressLine, ProgressLine } from '../../src/cli/progress.js';
import { emptySummary, type FetchProgress, type MailboxSummary } from '../../src/fetch/summary.js';

const progress = (mailbox: string, done: number, total: number, bytes = 0, totalBytes = 0): FetchProgress => ({ mailbox, done, total, bytes, totalBytes });

describe('progress line', () => {
  it('shows messages and bytes done of total for each mailbox still fetching', () => {
    expect(formatProgressLine([progress('support', 12, 50, 1_258_291, 4 * 1024 * 1024)])).toBe('support: 12 of 50 messages, 1.2 MB of 4.0 MB');
    expect(formatProgressLine([progress('a', 1, 2, 10, 20), progress('b', 0, 3, 0, 2048)])).toBe('a: 1 of 2 messages, 10 B of 20 B  |  b: 0 of 3 messages, 0 B of 2.0 KB');
  });

  it('is cut to the terminal width, so a carriage return can still rewrite it', () => {
    const line = formatProgressLine([progress('a-very-long-mailbox-name', 1, 2), progress('another-one', 1, 2)], 30);
    expect(line).toHaveLength(29);
    expect(line.endsWith('…')).toBe(true);
  });

  it('writes bytes in binary units', () => {
    expect([formatBytes(0), formatBytes(1023), formatBytes(1536), formatBytes(200 * 1024), formatBytes(5 * 1024 ** 3)]).toEqual(['0 B', '1023 B', '1.5 KB', '200 KB', '5.0 GB']);
  });

  it('redraws at most every interval, erases itself around other output and when cleared', () => {
    const out: string[] = [];
    let now = 1000;
    const line = new ProgressLine({ write: (s) => out.push(s) }, 100, () => now);
    line.update(progress('m', 0, 4));
    expect(out).toEqual(['\rm: 0 of 4 messages, 0 B of 0 B']);
    now += 10;
    line.update(progress('m', 1, 4)); // within the interval: deferred to a timer, not drawn now
    expect(out).toHaveLength(1);
    now += 100;
    line.update(progress('m', 2, 4));
    expect(out.at(-1)).toBe('\rm: 2 of 4 messages, 0 B of 0 B');
    line.interrupt(() => out.push('LOG\n'));
    expect(out.slice(-3)).toEqual([`\r${' '.repeat(30)}\r`, 'LOG\n', '\rm: 2 of 4 messages, 0 B of 0 B']);
    line.clear();
    expect(out.at(-1)).toBe(`\r${' '.repeat(30)}\r`);
    const written = out.length;
    line.clear();
    line.interrupt(() => out.push('LOG\n'));
    expect(out.slice(written)).toEqual(['LOG\n']);
  });
});

const ok = (name: string, extra: Partial<MailboxSummary> = {}): MailboxSummary => ({ ...emptySummary(name), fetched: 2, stored: 2, newTickets: 1, bytes: 2048, durationMs: 1500, ...extra });
const failed = (name: string): MailboxSummary => ({ ...emptySummary(name), ok: false, errorCode: 'AUTH', error: 'the server refused the login' });

describe('fetch output', () => {
  const cron = { json: false, verbose: false, terminal: false };

  it('prints nothing for a successful run when stdout is not a terminal (cron mails nothing)', () => {
    expect(formatOutput([ok('a'), { ...emptySummary('b'), skipped: 'in use by another run' }], cron)).toBe('');
  });

  it('prints one line per failing mailbox when stdout is not a terminal', () => {
    expect(formatOutput([ok('a'), failed('b'), failed('c')], cron)).toBe('b: AUTH: the server refused the login\nc: AUTH: the server refused the login\n');
    expect(failureLines([ok('a')])).toEqual([]);
  });

  it('prints the table on a terminal or with --verbose, JSON with --json', () => {
    const table = formatSummary([ok('a'), failed('b')]);
    expect(formatOutput([ok('a'), failed('b')], { ...cron, verbose: true })).toBe(table);
    expect(formatOutput([ok('a'), failed('b')], { ...cron, terminal: true })).toBe(table);
    expect(table).toMatch(/^a\s+ok\s+2\s+2\s+0\s+1\s+0\s+2\.0 KB\s+1\.5s$/m);
    expect(table).toMatch(/^b\s+FAILED/m);
    expect(table).toContain('\nb: AUTH: the server refused the login\n');
    expect(JSON.parse(formatOutput([ok('a')], { ...cron, json: true, terminal: true }))).toMatchObject({ ok: true, mailboxes: [{ mailbox: 'a' }] });
  });
});

describe('log setup', () => {
  it('logs info, pretty, on a terminal and only warnings as JSON elsewhere', () => {
    expect(logSetup({}, true)).toEqual({ level: 'info', pretty: true });
    expect(logSetup({}, false)).toEqual({ level: 'warn', pretty: false });
    expect(logSetup({ logLevel: 'debug' }, false)).toEqual({ level: 'debug', pretty: false });
  });

  it('keeps info for the daemon, whose stderr is a journal', () => {
    expect(logSetup({}, false, true)).toEqual({ level: 'info', pretty: false });
  });

  it('with --log-file: the file at --log-level (default info), stderr only warnings on a terminal, errors otherwise', () => {
    expect(logSetup({ logFile: '/var/log/m.log' }, false)).toEqual({ level: 'error', pretty: false, file: '/var/log/m.log', fileLevel: 'info' });
    expect(logSetup({ logFile: '/var/log/m.log', logLevel: 'debug' }, true)).toEqual({ level: 'warn', pretty: true, file: '/var/log/m.log', fileLevel: 'debug' });
  });
});

describe('--log-file', () => {
  it('creates the missing directories of its path', async () => {
    const file = join(tempDir('mailpoll-log-'), 'logs', 'deep', 'mailpoll.log');
    const log = await openLogger({ logFile: file }, false);
    log.info('hello');
    expect(statSync(file).size).toBeGreaterThan(0);
  });

  it.skipIf(!existsSync('/proc/self'))('under /proc, where Node\'s recursive mkdir never returns, is a usage error at once (exit 2)', async () => {
    const dir = tempDir('mailpoll-log-');
    const config = writeConfig(dir, { database: join(dir, 'm.db'), mailboxes: [{ name: 'box', protocol: 'imap', host: '127.0.0.1', port: 1, tls: 'implicit', username: 'u', password: 'p' }] });
    const run = await runMailpoll(['fetch', '--now', '--config', config, '--log-file', '/proc/mailpoll-no-such-dir/x.log'], {}, 10_000);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--log-file.*cannot append to it: ENOENT/);
  });
});
