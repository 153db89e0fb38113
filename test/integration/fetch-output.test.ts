import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainMessage, uniqueId } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { BIN, runMailpoll, tempDir, writeConfig, type RunResult } from '../support/mailpoll.js';
import { mailboxEntry, newUser, VARIANTS } from '../support/scenario.js';

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
});

/** One good IMAP mailbox with `count` messages, and optionally two with a wrong password. */
async function setup(count: number, withFailures = false): Promise<{ dir: string; config: string; password: string }> {
  const good = await newUser(server);
  for (let i = 0; i < count; i++) await server.deliver(good.user, plainMessage({ subject: `message ${i}`, messageId: uniqueId('out'), from: `sender${i}@example.org` }, `Hello ${i}\r\n${'x'.repeat(20_000)}\r\n`));
  const dir = tempDir();
  const wrong = 'Wrong-Password-456';
  const mailboxes: Record<string, unknown>[] = [{ ...mailboxEntry(server, VARIANTS[1]!, good), name: 'good' }];
  if (withFailures) {
    const bad = await newUser(server);
    mailboxes.push({ ...mailboxEntry(server, VARIANTS[0]!, bad), name: 'bad-imap', password: wrong }, { ...mailboxEntry(server, VARIANTS[3]!, bad), name: 'bad-pop3', password: wrong });
  }
  return { dir, config: writeConfig(dir, { database: join(dir, 'mailpoll.db'), mailboxes }), password: wrong };
}

/** Runs the CLI on a pseudo-terminal (util-linux `script`), the way a person at a terminal does. */
function runOnTerminal(args: string[]): Promise<RunResult> {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, MAILPOLL_CONFIG: undefined, COLUMNS: '200' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe('fetch output for cron (stdout not a terminal)', () => {
  it('a successful run prints nothing at all', async () => {
    const { config } = await setup(2);
    const run = await runMailpoll(['fetch', '--now', '--config', config]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe('');
    // Nothing due: nothing either.
    expect(await runMailpoll(['fetch', '--config', config])).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('a run with failures prints one line per failing mailbox, and --verbose the table', async () => {
    const { config, password } = await setup(1, true);
    const run = await runMailpoll(['fetch', '--now', '--config', config]);
    expect(run.code).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^bad-imap: AUTH: /);
    expect(lines[1]).toMatch(/^bad-pop3: AUTH: /);
    expect(run.stdout + run.stderr).not.toContain(password);

    const verbose = await runMailpoll(['fetch', '--now', '--verbose', '--config', config]);
    expect(verbose.code).toBe(1);
    expect(verbose.stdout).toMatch(/^mailbox\s+result\s+fetched/);
    expect(verbose.stdout).toMatch(/good\s+ok\s+0\s+0/);
    expect(verbose.stdout).toMatch(/bad-imap\s+FAILED/);
  });

  it('--log-file gets JSON lines at info while stderr stays quiet', async () => {
    const { dir, config } = await setup(1, true);
    const logFile = join(dir, 'logs', 'deep', 'mailpoll.log');
    const run = await runMailpoll(['fetch', '--now', '--config', config, '--log-file', logFile]);
    expect(run.code).toBe(1);
    const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; mailbox?: string });
    expect(lines.find((l) => l.msg === 'mailbox polled' && l.mailbox === 'good')).toMatchObject({ level: 30, stored: 1 });
    expect(lines.filter((l) => l.msg === 'mailbox failed').map((l) => l.mailbox).sort()).toEqual(['bad-imap', 'bad-pop3']);
    // stderr (cron mail): only errors; the failure lines are on stdout.
    for (const line of run.stderr.trimEnd().split('\n')) expect((JSON.parse(line) as { level: number }).level).toBeGreaterThanOrEqual(50);
    expect(run.stdout.trimEnd().split('\n')).toHaveLength(2);

    // Appended, not replaced.
    const before = readFileSync(logFile, 'utf8').length;
    await runMailpoll(['fetch', '--now', '--mailbox', 'good', '--config', config, '--log-file', logFile, '--log-level', 'warn']);
    expect(readFileSync(logFile, 'utf8').length).toBe(before);
    await runMailpoll(['fetch', '--now', '--mailbox', 'good', '--config', config, '--log-file', logFile]);
    expect(readFileSync(logFile, 'utf8').length).toBeGreaterThan(before);
  });
});

describe('fetch output on a terminal', () => {
  it('shows a progress line while fetching, erases it, then prints the summary table', async () => {
    const { config } = await setup(150);
    const run = await runOnTerminal(['fetch', '--now', '--config', config]);
    expect(run.code, run.stdout).toBe(0);
    const out = run.stdout;
    expect(out).toMatch(/\rgood: \d+ of 150 messages, [\d.]+ [KM]?B of [\d.]+ [KM]?B/);
    const lastProgress = out.lastIndexOf(' of 150 messages');
    const table = out.indexOf('mailbox', lastProgress);
    expect(table).toBeGreaterThan(lastProgress);
    // Between the last progress text and the table: the line erased with spaces and a carriage return.
    expect(out.slice(lastProgress, table)).toMatch(/\r {20,}\r/);
    expect(out).toMatch(/good\s+ok\s+150\s+150/);
  });

  it('--json on a terminal prints JSON only, no progress line', async () => {
    const { config } = await setup(40);
    const run = await runOnTerminal(['fetch', '--now', '--config', config, '--json']);
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).not.toContain(' of 40 messages');
    expect(JSON.parse(run.stdout.replace(/\r\n/g, '\n'))).toMatchObject({ ok: true, mailboxes: [{ mailbox: 'good', stored: 40 }] });
  });
});
