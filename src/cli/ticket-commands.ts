import { InvalidArgumentError, Option, type Command } from 'commander';
import type { GlobalOptions } from './main.js';

/**
 * `mailpoll tickets list|show|export` and `mailpoll attachments save`. main.ts imports this module
 * on every run, so it imports nothing but commander; the database and the commands load when one
 * of these commands runs.
 */
export function registerTicketCommands(program: Command, globals: () => GlobalOptions): void {
  const tickets = program.command('tickets').description('look at the stored tickets: list, show one thread, export');

  tickets
    .command('list')
    .description('list tickets, most recently updated first')
    .option('-m, --mailbox <name>', 'only tickets opened from this mailbox')
    .option('--status <status>', 'only tickets with this status, e.g. open')
    .option('--since <when>', 'only tickets updated since a date (2026-11-01, 2026-11-01T09:00Z; UTC) or within a duration (7d, 12h, 2w)', cliArg(parseSince))
    .option('--limit <n>', 'at most this many tickets', cliArg(parseCount), 50)
    .option('--json', 'print as JSON')
    .action(async (opts: { mailbox?: string; status?: string; since?: Date; limit: number; json?: boolean }) => {
      const { ticketsListCommand } = await import('./tickets.js');
      process.exitCode = await ticketsListCommand({ ...globals(), ...opts, json: opts.json === true });
    });

  tickets
    .command('show')
    .description('show a ticket and its whole thread: senders, dates, classes, attachments, text bodies')
    .argument('<number>', 'the ticket number, e.g. 1001 or #1001', cliArg(parseTicketNumber))
    .option('--json', 'print as JSON')
    .action(async (number: number, opts: { json?: boolean }) => {
      const { ticketsShowCommand } = await import('./tickets.js');
      process.exitCode = await ticketsShowCommand({ ...globals(), number, json: opts.json === true });
    });

  tickets
    .command('export')
    .description('write every stored message, one row each with its ticket number, as JSON Lines or CSV (RFC 4180, UTF-8)')
    .addOption(new Option('--format <format>', 'output format').choices(['jsonl', 'csv']).makeOptionMandatory())
    .option('-o, --out <file>', 'write to this file (replaced if it exists) instead of stdout')
    .option('-m, --mailbox <name>', 'only messages that came from this mailbox')
    .option('--status <status>', 'only messages on tickets with this status')
    .option('--since <when>', 'only messages stored since a date or within a duration, as for list', cliArg(parseSince))
    .action(async (opts: { format: 'jsonl' | 'csv'; out?: string; mailbox?: string; status?: string; since?: Date }) => {
      const { ticketsExportCommand } = await import('./tickets.js');
      process.exitCode = await ticketsExportCommand({ ...globals(), ...opts });
    });

  program
    .command('attachments')
    .description('get attachments out of the database')
    .command('save')
    .description('write one attachment into a directory under a safe version of its name; never overwrites, never writes outside DIR')
    .argument('<id>', 'the attachment id, as `tickets show` lists it', cliArg(parseCount))
    .requiredOption('-o, --out <dir>', 'the directory (created if missing)')
    .action(async (id: number, opts: { out: string }) => {
      const { attachmentsSaveCommand } = await import('./attachments.js');
      process.exitCode = await attachmentsSaveCommand({ ...globals(), id, out: opts.out });
    });
}

/** Adapts a parser that returns an error message to commander, which exits 2 on a bad argument. */
function cliArg<T>(parse: (value: string) => T | string): (value: string) => T {
  return (value) => {
    const result = parse(value);
    if (typeof result === 'string') throw new InvalidArgumentError(result);
    return result;
  };
}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/**
 * `--since`: a duration back from `now` (`7d`, `12h`, `30m`, `2w`) or an ISO date or date-time.
 * Every time mailpoll shows is UTC, so a date or a time without a zone is read as UTC.
 * Returns an error message for anything else, including dates that do not exist (2026-02-30).
 */
export function parseSince(value: string, now: Date = new Date()): Date | string {
  const text = value.trim();
  const duration = /^(\d+)\s*([smhdw])$/i.exec(text);
  if (duration) {
    return new Date(now.getTime() - Number(duration[1]) * (DURATION_UNITS[(duration[2] ?? 's').toLowerCase()] ?? 1000));
  }
  const iso = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?)(Z|[+-]\d{2}:?\d{2})?)?$/i.exec(text);
  if (iso) {
    const [, day, time, zone] = iso;
    const date = new Date(`${day}T${time ?? '00:00'}${(zone ?? 'Z').replace(/^([+-]\d{2})(\d{2})$/, '$1:$2')}`);
    // Date rolls 2026-02-30 over into March; a day that does not exist is a typo.
    const calendarDay = new Date(`${day}T00:00Z`);
    if (!Number.isNaN(date.getTime()) && !Number.isNaN(calendarDay.getTime()) && calendarDay.toISOString().slice(0, 10) === day) return date;
  }
  return 'expected a date such as 2026-11-01 or 2026-11-01T09:00Z, or a duration such as 7d, 12h or 2w';
}

/** A positive integer (`--limit`, an attachment id). */
export function parseCount(value: string): number | string {
  return /^\d+$/.test(value.trim()) && Number(value) > 0 && Number.isSafeInteger(Number(value)) ? Number(value) : 'expected a positive whole number';
}

/** A ticket number as people write it: `1001` or `#1001`. */
export function parseTicketNumber(value: string): number | string {
  const n = parseCount(value.trim().replace(/^#/, ''));
  return typeof n === 'number' ? n : 'expected a ticket number such as 1001 or #1001';
}
