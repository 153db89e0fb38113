import { createWriteStream, openSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { configPath, loadConfig } from '../config/load.js';
import { MailpollError } from '../errors.js';
import { openDatabase, type Db } from '../store/database.js';
import {
  EXPORT_COLUMNS,
  exportTickets,
  listTickets,
  showTicket,
  type ExportRow,
  type Person,
  type TicketDetail,
  type TicketSummary,
} from '../store/ticket-queries.js';
import { EXIT } from './exit-codes.js';
import type { GlobalOptions } from './main.js';

async function withDatabase<T>(opts: GlobalOptions, use: (db: Db) => Promise<T> | T): Promise<T> {
  const config = loadConfig(configPath(opts.config));
  const db = openDatabase(config.database);
  try {
    return await use(db);
  } finally {
    db.close();
  }
}

export interface TicketsListOptions extends GlobalOptions {
  mailbox?: string | undefined;
  status?: string | undefined;
  since?: Date | undefined;
  limit: number;
  json: boolean;
}

export async function ticketsListCommand(opts: TicketsListOptions): Promise<number> {
  const tickets = await withDatabase(opts, (db) => listTickets(db, opts));
  const width = process.stdout.isTTY ? process.stdout.columns : undefined;
  process.stdout.write(opts.json ? `${JSON.stringify(tickets, null, 2)}\n` : formatTicketList(tickets, width));
  return EXIT.OK;
}

export async function ticketsShowCommand(opts: GlobalOptions & { number: number; json: boolean }): Promise<number> {
  const ticket = await withDatabase(opts, (db) => showTicket(db, opts.number));
  if (ticket === undefined) {
    throw new MailpollError('STORE', `there is no ticket #${opts.number}; \`mailpoll tickets list\` shows the ticket numbers`);
  }
  process.stdout.write(opts.json ? `${JSON.stringify(ticket, null, 2)}\n` : formatTicket(ticket));
  return EXIT.OK;
}

export interface TicketsExportOptions extends GlobalOptions {
  format: 'jsonl' | 'csv';
  out?: string | undefined;
  mailbox?: string | undefined;
  status?: string | undefined;
  since?: Date | undefined;
}

/** Streams the export to `--out` or stdout, waiting for the reader: memory stays flat however big the database. */
export async function ticketsExportCommand(opts: TicketsExportOptions): Promise<number> {
  return withDatabase(opts, async (db) => {
    const file = opts.out === undefined ? undefined : openOut(opts.out);
    const out = file ?? process.stdout;
    const rows = exportTickets(db, opts);
    try {
      await writeAll(out, opts.format === 'csv' ? csvLines(rows) : jsonLines(rows));
      if (file !== undefined) {
        file.end();
        await finished(file);
      }
    } catch (err) {
      file?.destroy();
      // A reader that stops early (`| head`) is not a failure of the export.
      if (file === undefined && (err as NodeJS.ErrnoException).code === 'EPIPE') return EXIT.OK;
      throw new MailpollError('STORE', `cannot write the export to ${opts.out ?? 'stdout'}: ${(err as Error).message}`, { cause: err });
    }
    return EXIT.OK;
  });
}

function openOut(file: string): WriteStream {
  try {
    // Opened here, synchronously, so a bad path fails before anything is read.
    return createWriteStream(file, { fd: openSync(file, 'w') });
  } catch (err) {
    throw new MailpollError('STORE', `cannot write the export to ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Writes chunks in batches of about 64 KiB, awaiting 'drain' when the stream asks to. The error
 * listener stays: a closed pipe may report EPIPE for bytes already buffered, after we are done.
 */
async function writeAll(out: NodeJS.WritableStream, chunks: Iterable<string>): Promise<void> {
  let failure: Error | undefined;
  out.on('error', (err: Error) => {
    failure ??= err;
  });
  let batch = '';
  const flush = async () => {
    if (failure) throw failure;
    const ok = out.write(batch);
    batch = '';
    if (!ok) await once(out, 'drain');
    if (failure) throw failure;
  };
  for (const chunk of chunks) {
    batch += chunk;
    if (batch.length >= 65_536) await flush();
  }
  if (batch !== '') await flush();
}

type ExportValue = ExportRow[keyof ExportRow];

/**
 * JSON Lines: one object per line, keys in EXPORT_COLUMNS order. U+2028, U+2029 and U+0085 are
 * escaped although JSON allows them raw, because some line readers split on them.
 */
export function* jsonLines(rows: Iterable<ExportRow>): Generator<string> {
  for (const row of rows) {
    const ordered = Object.fromEntries(EXPORT_COLUMNS.map((c) => [c, row[c]]));
    yield `${JSON.stringify(ordered).replace(/[\u2028\u2029\u0085]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`;
  }
}

/**
 * CSV per RFC 4180: a header row, CRLF after every record, a field quoted when it holds a comma,
 * a double quote, CR or LF, with its quotes doubled. null is an empty field, booleans are
 * true/false. UTF-8 without a byte-order mark (spreadsheets that need one import it as UTF-8).
 * Values are written as stored, never prefixed against spreadsheet formulas: this is data for
 * tools, and a mail subject beginning with `=` stays what it was.
 */
export function* csvLines(rows: Iterable<ExportRow>): Generator<string> {
  yield csvRecord(EXPORT_COLUMNS);
  for (const row of rows) yield csvRecord(EXPORT_COLUMNS.map((c) => row[c]));
}

export function csvRecord(values: readonly ExportValue[]): string {
  return `${values.map(csvField).join(',')}\r\n`;
}

export function csvField(value: ExportValue): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// ---- text output -------------------------------------------------------------------------

/**
 * Mail text is chosen by its sender: an ESC or a C1 control in a subject could drive the terminal
 * (change the title, hide lines, fake output). Controls become U+FFFD; in one-line fields, line
 * breaks and tabs become spaces; bidi overrides are dropped so text cannot display reversed.
 */
export function printable(text: string, multiline = false): string {
  const cleaned = text.replace(/[\u202a-\u202e\u2066-\u2069]/g, '');
  if (multiline) return cleaned.replace(/\r\n?/g, '\n').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '\ufffd');
  return cleaned.replace(/[\t\r\n]+/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '\ufffd');
}

/** Columns a code point takes in a terminal: 0 for combining marks, 2 for East Asian wide and emoji. */
function charWidth(cp: number): number {
  if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || cp === 0xfe0f) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) || (cp >= 0x20000 && cp <= 0x3fffd)
  ) return 2;
  return 1;
}

export function displayWidth(text: string): number {
  let w = 0;
  for (const ch of text) w += charWidth(ch.codePointAt(0) ?? 0);
  return w;
}

/** `text` cut to `width` columns (with … when cut) and padded to exactly `width`. */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  let out = text;
  if (displayWidth(text) > width) {
    out = '';
    let w = 0;
    for (const ch of text) {
      const cw = charWidth(ch.codePointAt(0) ?? 0);
      if (w + cw > width - 1) break;
      out += ch;
      w += cw;
    }
    out += '…';
  }
  const pad = ' '.repeat(Math.max(0, width - displayWidth(out)));
  return align === 'left' ? out + pad : pad + out;
}

const minute = (iso: string) => iso.slice(0, 16).replace('T', ' ');
const second = (iso: string) => `${iso.slice(0, 19).replace('T', ' ')}Z`;

function personShort(p: Person): string {
  return printable(p.name || p.address || '(unknown sender)');
}

function personLong(p: Person): string {
  if (p.name && p.address) return printable(`${p.name} <${p.address}>`);
  return printable(p.name || (p.address ? `<${p.address}>` : '(unknown sender)'));
}

const TABLE_WIDTH = 120;

/**
 * One line per ticket, fitted to `width` columns (the terminal's, else 120): the subject takes
 * what the other columns leave, at least 20.
 */
export function formatTicketList(tickets: readonly TicketSummary[], width = TABLE_WIDTH): string {
  if (tickets.length === 0) return 'no tickets\n';
  const rows = tickets.map((t) => ({
    number: `#${t.number}`,
    status: printable(t.status),
    updated: minute(t.updatedAt),
    mailbox: printable(t.mailbox),
    messages: String(t.messageCount),
    from: personShort(t.requester),
    subject: (t.parseFailed ? '[unparsed] ' : '') + printable(t.subject ?? '(no subject)'),
  }));
  const head = { number: '#', status: 'STATUS', updated: 'UPDATED (UTC)', mailbox: 'MAILBOX', messages: 'MSGS', from: 'FROM', subject: 'SUBJECT' };
  const col = (key: keyof typeof head, max: number) => Math.min(max, Math.max(displayWidth(head[key]), ...rows.map((r) => displayWidth(r[key]))));
  const w = { number: col('number', 12), status: col('status', 12), updated: 16, mailbox: col('mailbox', 20), messages: col('messages', 6), from: col('from', 24) };
  const fixed = w.number + w.status + w.updated + w.mailbox + w.messages + w.from + 6 * 2;
  const subjectWidth = Math.max(20, width - fixed - 1);
  const line = (r: typeof head) =>
    [fit(r.number, w.number), fit(r.status, w.status), fit(r.updated, w.updated), fit(r.mailbox, w.mailbox),
      fit(r.messages, w.messages, 'right'), fit(r.from, w.from), fit(r.subject, subjectWidth)].join('  ').trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const indent = (text: string, by: string) => text.split('\n').map((l) => (l === '' ? '' : by + l)).join('\n');

/** The ticket's header, then each message: sender, dates, class, subject, attachments, text body. */
export function formatTicket(t: TicketDetail): string {
  const out: string[] = [];
  out.push(`#${t.number}  ${printable(t.subject ?? '(no subject)')}`);
  out.push(`status ${printable(t.status)} · mailbox ${printable(t.mailbox)} · ${t.messageCount} message${t.messageCount === 1 ? '' : 's'}` +
    ` · opened ${second(t.createdAt)} · updated ${second(t.updatedAt)}`);
  out.push(`requester ${personLong(t.requester)}`);
  if (t.parseFailed) out.push('its first message could not be parsed; the raw bytes are kept');
  t.messages.forEach((m, i) => {
    out.push('', `── message ${i + 1} of ${t.messages.length} (id ${m.id}) · ${m.class}${m.mailbox === t.mailbox ? '' : ` · via ${printable(m.mailbox)}`}`);
    out.push(`  From:     ${personLong(m.sender)}`);
    out.push(`  Date:     ${m.sentAt === null ? '(none)' : second(m.sentAt)}, stored ${second(m.receivedAt)}`);
    out.push(`  Subject:  ${printable(m.subject ?? '(no subject)')}`);
    if (m.parseError !== null) out.push(`  Parse error: ${printable(m.parseError)} (raw bytes kept)`);
    if (m.headersOnly) out.push('  Headers only: the message was over the size limit and stays on the server');
    if (m.attachments.length > 0) {
      out.push('  Attachments:');
      for (const a of m.attachments) {
        out.push(`    [${a.id}] ${printable(a.filename ?? '(no name)')}  ${printable(a.contentType)}  ${size(a.size)}${a.inline ? '  inline' : ''}`);
      }
    }
    const body = m.text === null || m.text.trim() === '' ? (m.hasHtml ? '(HTML only, no text part)' : '(no text)') : printable(m.text, true).trimEnd();
    out.push('', indent(body, '    '));
  });
  return `${out.join('\n')}\n`;
}
