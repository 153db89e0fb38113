import { configPath, loadConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { afterRun } from '../fetch/after-run.js';
import { dueMailboxes, earliestDue, runFetch, storeRules } from '../fetch/run-fetch.js';
import { writeDueNote } from './due-cache.js';
import type { MailboxSummary } from '../fetch/summary.js';
import { openDatabase } from '../store/database.js';
import { EXIT } from './exit-codes.js';
import { openLogger } from './log-setup.js';
import type { GlobalOptions } from './main.js';
import { beside, formatBytes, ProgressLine } from './progress.js';

export interface FetchCommandOptions extends GlobalOptions {
  mailbox: string[];
  now: boolean;
  concurrency: number;
  json: boolean;
  /** Print the summary table even when stdout is not a terminal. */
  verbose: boolean;
  /** `--metrics-file`: Prometheus metrics written atomically after the run. */
  metricsFile?: string;
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
      writeDueNote(file, config.database, earliestDue(config, db));
      if (opts.json) process.stdout.write(`${JSON.stringify({ ok: true, mailboxes: [] })}\n`);
      else if (opts.verbose || process.stdout.isTTY) process.stdout.write('no mailbox is due (see mailpoll status); mailpoll fetch --now polls them anyway\n');
      await afterRun(config, db, [], { metricsFile: opts.metricsFile, log: undefined });
      return EXIT.OK;
    }
    // A person at a terminal gets a progress line and pretty logs; cron, pipes and --json none of it.
    const terminal = !opts.json && process.stderr.isTTY === true;
    const progress = terminal ? new ProgressLine(process.stderr) : undefined;
    const log = await openLogger(opts, terminal, { destination: progress && beside(progress, process.stderr) });
    let summaries;
    try {
      summaries = await runFetch(due, db, { concurrency: opts.concurrency, rules: storeRules(config), onProgress: progress && ((p) => progress.update(p)) }, log);
    } finally {
      progress?.clear();
    }
    // A log file is the record of every run: one line per mailbox, whatever its outcome.
    if (opts.logFile !== undefined) for (const s of summaries) log.info({ ...s }, s.ok ? 'mailbox polled' : 'mailbox poll failed');
    writeDueNote(file, config.database, earliestDue(config, db));
    process.stdout.write(formatOutput(summaries, { json: opts.json, verbose: opts.verbose, terminal: process.stdout.isTTY === true }));
    await afterRun(config, db, summaries, { metricsFile: opts.metricsFile, log }); // dead-man ping, metrics file
    return summaries.every((s) => s.ok) ? EXIT.OK : EXIT.FAILED;
  } finally {
    db.close();
  }
}

/**
 * What `fetch` prints on stdout: JSON with --json; the summary table on a terminal or with
 * --verbose; else (cron) nothing when every mailbox was fine, one `mailbox: CODE: reason` line
 * per failing mailbox otherwise, so cron mails only when there is something to do.
 */
export function formatOutput(summaries: readonly MailboxSummary[], mode: { json: boolean; verbose: boolean; terminal: boolean }): string {
  if (mode.json) return `${JSON.stringify({ ok: summaries.every((s) => s.ok), mailboxes: summaries }, null, 2)}\n`;
  if (mode.terminal || mode.verbose) return formatSummary(summaries);
  return failureLines(summaries).map((l) => `${l}\n`).join('');
}

/** One line per failing mailbox: `support: AUTH: the server refused the password ...`. */
export function failureLines(summaries: readonly MailboxSummary[]): string[] {
  return summaries.filter((s) => !s.ok).map((s) => `${s.mailbox}: ${s.errorCode ?? 'ERROR'}: ${s.error ?? 'unknown error'}`);
}

export function formatSummary(summaries: readonly MailboxSummary[]): string {
  const header = ['mailbox', 'result', 'fetched', 'stored', 'duplicates', 'new tickets', 'oversize', 'size', 'time'];
  const rows = summaries.map((s) => [
    s.mailbox,
    s.skipped !== undefined ? 'skipped' : s.ok ? 'ok' : 'FAILED',
    String(s.fetched),
    String(s.stored),
    String(s.duplicates),
    String(s.newTickets),
    String(s.oversize),
    formatBytes(s.bytes),
    `${(s.durationMs / 1000).toFixed(1)}s`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const failures = failureLines(summaries);
  const skipped = summaries.filter((s) => s.skipped !== undefined).map((s) => `${s.mailbox}: skipped: ${s.skipped ?? ''}`);
  return [line(header), ...rows.map(line), ...(failures.length + skipped.length > 0 ? ['', ...failures, ...skipped] : [])].join('\n') + '\n';
}
