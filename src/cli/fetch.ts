import { configPath, loadConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { dueMailboxes, runFetch, storeRules } from '../fetch/run-fetch.js';
import type { MailboxSummary } from '../fetch/summary.js';
import { createLogger } from '../log.js';
import { openDatabase } from '../store/database.js';
import { EXIT } from './exit-codes.js';
import type { GlobalOptions } from './main.js';

export interface FetchCommandOptions extends GlobalOptions {
  mailbox: string[];
  now: boolean;
  concurrency: number;
  json: boolean;
}

export async function fetchCommand(opts: FetchCommandOptions): Promise<number> {
  const file = configPath(opts.config);
  const config = loadConfig(file);
  const unknown = opts.mailbox.filter((name) => !config.mailboxes.some((m) => m.name === name));
  if (unknown.length > 0) {
    throw new ConfigError(unknown.map((name) => ({ file, line: undefined, column: undefined, field: '--mailbox', message: `no mailbox named "${name}"` })));
  }
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) {
    throw new ConfigError([{ file, line: undefined, column: undefined, field: '--concurrency', message: 'must be a whole number of at least 1' }]);
  }
  const db = openDatabase(config.database);
  try {
    // Decided from SQLite alone: a cron tick with nothing due loads neither pino nor any protocol.
    const due = dueMailboxes(config, db, { only: opts.mailbox, now: opts.now });
    if (due.length === 0) {
      if (opts.json) process.stdout.write(`${JSON.stringify({ ok: true, mailboxes: [] })}\n`);
      return EXIT.OK;
    }
    const log = await createLogger({ level: opts.logLevel, pretty: process.stderr.isTTY === true });
    const summaries = await runFetch(due, db, { concurrency: opts.concurrency, rules: storeRules(config) }, log);
    process.stdout.write(opts.json ? `${JSON.stringify({ ok: summaries.every((s) => s.ok), mailboxes: summaries }, null, 2)}\n` : formatSummary(summaries));
    return summaries.every((s) => s.ok) ? EXIT.OK : EXIT.FAILED;
  } finally {
    db.close();
  }
}

export function formatSummary(summaries: readonly MailboxSummary[]): string {
  const header = ['mailbox', 'result', 'fetched', 'stored', 'duplicates', 'new tickets', 'oversize'];
  const rows = summaries.map((s) => [
    s.mailbox,
    s.skipped !== undefined ? 'skipped' : s.ok ? 'ok' : 'FAILED',
    String(s.fetched),
    String(s.stored),
    String(s.duplicates),
    String(s.newTickets),
    String(s.oversize),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const failures = summaries.filter((s) => !s.ok).map((s) => `${s.mailbox}: ${s.errorCode ?? 'ERROR'}: ${s.error ?? 'unknown error'}`);
  const skipped = summaries.filter((s) => s.skipped !== undefined).map((s) => `${s.mailbox}: skipped: ${s.skipped ?? ''}`);
  return [line(header), ...rows.map(line), ...(failures.length + skipped.length > 0 ? ['', ...failures, ...skipped] : [])].join('\n') + '\n';
}
