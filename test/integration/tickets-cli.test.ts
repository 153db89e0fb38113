import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { classify } from '../../src/parse/classify.js';
import { parseMessage } from '../../src/parse/parse-message.js';
import { openDatabase } from '../../src/store/database.js';
import { MailStore } from '../../src/store/mail-store.js';
import { attachmentMessage, encodedSubjectMessage, ENCODED_SUBJECT, plainMessage, uniqueId } from '../fixtures/messages.js';
import { query, runMailpoll, tempDir, writeConfig } from '../support/mailpoll.js';

/**
 * The ticket commands read the database only, so no server is needed: the database is filled
 * with MailStore, the way a fetch fills it, and the built CLI runs against it as a process.
 */

const INVOICE = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.alloc(5000, 0xff)]);
const EVIL_SCRIPT = '#!/bin/sh\r\necho pwned\r\n';
/** Text that breaks naive CSV and JSONL writers: commas, quotes, CRLF, LF, a BOM, U+2028. */
const TRICKY_BODY = 'Hi, "team",\r\nline two; semi\r\n\r\n\ufeffzero-width\u2028separator, done.\r\n';

/** A message whose subject carries terminal escapes and whose attachments have hostile names. */
function hostileMessage(): Buffer {
  return Buffer.from(
    [
      'From: Mallory <mallory@example.net>',
      'To: support@example.com',
      // ESC ] 0 ; ... BEL sets the terminal title, ESC [ 2 J clears the screen (RFC 2047 Q keeps the bytes).
      'Subject: =?UTF-8?Q?=1B]0;pwned=07=1B[2JInvoice_overdue?=',
      'Date: Tue, 24 Nov 2026 11:00:00 +0000',
      `Message-ID: <${uniqueId('hostile')}>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'see attached',
      '--b',
      'Content-Type: application/x-sh',
      'Content-Disposition: attachment; filename="../../evil.sh"',
      '',
      EVIL_SCRIPT.slice(0, -2),
      '--b',
      'Content-Type: text/plain; charset=utf-8',
      // RFC 2231: a UTF-8 name, percent-encoded.
      "Content-Disposition: attachment; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20aus%20K%C3%B6ln.txt",
      '',
      'hallo',
      '--b--',
      '',
    ].join('\r\n'),
  );
}

let dir: string;
let dbFile: string;
let config: string;
let attachmentIds: Record<string, number>;

beforeAll(async () => {
  dir = tempDir('mailpoll-tickets-');
  dbFile = join(dir, 'data', 'mailpoll.db');
  config = writeConfig(dir, {
    database: dbFile,
    // These commands never connect: the mailbox only has to be valid config.
    mailboxes: [{ name: 'support', protocol: 'imap', host: 'mail.invalid', username: 'helpdesk', password: 'not-used' }],
  });
  const db = openDatabase(dbFile);
  // The store stamps "now": one message a minute over the last half hour makes the order certain.
  // Only Date is faked; mailparser needs real timers.
  const start = Date.now() - 30 * 60_000;
  vi.useFakeTimers({ toFake: ['Date'] });
  try {
    const store = new MailStore(db);
    let n = 0;
    const ingest = async (mailbox: string, raw: Buffer) => {
      const parsed = await parseMessage(raw);
      n += 1;
      vi.setSystemTime(start + n * 60_000);
      store.ingest({ mailbox, serverId: `1:${n}`, uid: n, uidValidity: '1', raw, parsed, acknowledged: true, classification: classify(raw, parsed) });
    };
    const parent = uniqueId('parent');
    await ingest('support', plainMessage({ messageId: parent, subject: 'Printer on fire, "again"' }, TRICKY_BODY)); // #1001
    await ingest('sales', encodedSubjectMessage({ from: 'Carla Ünal <carla@example.net>' })); // #1002
    await ingest('support', attachmentMessage({ from: 'Bob Builder <bob@example.com>', subject: 'Re: Printer on fire', inReplyTo: parent }, INVOICE));
    await ingest('support', plainMessage({ subject: 'Out of office', inReplyTo: parent, extraHeaders: ['Auto-Submitted: auto-replied'] }, 'Away.\r\n'));
    await ingest('support', hostileMessage()); // #1003
  } finally {
    vi.useRealTimers();
    db.close();
  }
  const rows = query<{ id: number; filename: string }>(dbFile, 'SELECT id, filename FROM attachments ORDER BY id');
  attachmentIds = Object.fromEntries(rows.map((r) => [r.filename, r.id]));
});

const mailpoll = (...args: string[]) => runMailpoll([...args, '--config', config]);

interface TicketJson {
  number: number;
  subject: string | null;
  status: string;
  requester: { name: string | null; address: string | null };
  mailbox: string;
  messageCount: number;
  updatedAt: string;
}

describe('mailpoll tickets list', () => {
  it('prints a table, newest update first, with number, status, mailbox, message count, sender and subject', async () => {
    const r = await mailpoll('tickets', 'list');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^#\s+STATUS\s+UPDATED \(UTC\)\s+MAILBOX\s+MSGS\s+FROM\s+SUBJECT$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['#1003', '#1001', '#1002']);
    expect(lines[2]).toMatch(/^#1001\s+open\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}\s+support\s+3\s+Alice Example\s+Printer on fire, "again"$/);
    expect(lines[3]).toContain(ENCODED_SUBJECT);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(120);
  });

  it('never passes terminal escape sequences from a subject through to the terminal', async () => {
    const r = await mailpoll('tickets', 'list');
    expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(r.stdout).toMatch(/#1003 .*Invoice overdue/);
  });

  it('prints JSON with --json, and filters by mailbox, status, --since and --limit', async () => {
    const all = JSON.parse((await mailpoll('tickets', 'list', '--json')).stdout) as TicketJson[];
    expect(all.map((t) => t.number)).toEqual([1003, 1001, 1002]);
    expect(all[1]).toMatchObject({ subject: 'Printer on fire, "again"', messageCount: 3, requester: { address: 'alice@example.org' } });
    const numbers = async (...args: string[]) => (JSON.parse((await mailpoll('tickets', 'list', '--json', ...args)).stdout) as TicketJson[]).map((t) => t.number);
    expect(await numbers('--mailbox', 'sales')).toEqual([1002]);
    expect(await numbers('--status', 'closed')).toEqual([]);
    expect(await numbers('--limit', '1')).toEqual([1003]);
    expect(await numbers('--since', '1h')).toEqual([1003, 1001, 1002]);
    expect(await numbers('--since', '2999-01-01')).toEqual([]);
  });

  it('says "no tickets" when nothing matches', async () => {
    const r = await mailpoll('tickets', 'list', '--mailbox', 'nowhere');
    expect(r).toMatchObject({ code: 0, stdout: 'no tickets\n' });
  });

  it.each([
    [['--since', 'last tuesday']],
    [['--since', '2026-02-30']],
    [['--limit', '0']],
    [['--limit', 'ten']],
  ])('rejects %j as a usage error (exit 2)', async (args) => {
    const r = await mailpoll('tickets', 'list', ...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid|expected/);
  });
});

describe('mailpoll tickets show', () => {
  it('prints the whole thread: sender, date, class, subject, attachments with ids, then the indented text', async () => {
    const r = await mailpoll('tickets', 'show', '1001');
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/^#1001 {2}Printer on fire, "again"\n/);
    expect(out).toContain('requester Alice Example <alice@example.org>');
    const order = ['message 1 of 3', 'message 2 of 3', 'message 3 of 3'].map((s) => out.indexOf(s));
    expect(order.every((at, i) => at > 0 && (i === 0 || at > (order[i - 1] ?? 0)))).toBe(true);
    expect(out).toMatch(/message 1 of 3 \(id \d+\) · normal/);
    expect(out).toMatch(/message 3 of 3 \(id \d+\) · auto-reply/);
    expect(out).toContain('  From:     Bob Builder <bob@example.com>');
    expect(out).toContain('  Date:     2026-11-24 09:30:00Z, stored ');
    expect(out).toContain(`    [${attachmentIds['invoice.pdf']}] invoice.pdf  application/pdf  5.1 KB`);
    expect(out).toContain(`    [${attachmentIds['shot.png']}] shot.png  image/png  29 B  inline`);
    expect(out).toContain('    Hi, "team",\n    line two; semi\n');
    expect(out).toContain('    Away.');
  });

  it('accepts #1001 as well as 1001, and prints JSON with --json', async () => {
    const text = await mailpoll('tickets', 'show', '#1001');
    expect(text.code).toBe(0);
    const json = JSON.parse((await mailpoll('tickets', 'show', '1001', '--json')).stdout) as TicketJson & {
      messages: { class: string; sender: { address: string }; text: string | null; attachments: { id: number; filename: string }[] }[];
    };
    expect(json.number).toBe(1001);
    expect(json.messages.map((m) => [m.sender.address, m.class])).toEqual([
      ['alice@example.org', 'normal'],
      ['bob@example.com', 'normal'],
      ['alice@example.org', 'auto-reply'],
    ]);
    expect(json.messages[0]?.text).toBe(TRICKY_BODY.replaceAll('\r\n', '\n'));
    expect(json.messages[1]?.attachments.map((a) => a.filename)).toEqual(['shot.png', 'invoice.pdf']);
  });

  it('keeps escape sequences of a hostile subject off the terminal', async () => {
    const r = await mailpoll('tickets', 'show', '1003');
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('\u001b');
    expect(r.stdout).not.toContain('\u0007');
    expect(r.stdout).toContain('../../evil.sh');
  });

  it('fails with exit 1 and a clear message for an unknown ticket', async () => {
    const r = await mailpoll('tickets', 'show', '9999');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('there is no ticket #9999');
  });

  it('rejects a ticket number that is not a number (exit 2)', async () => {
    expect((await mailpoll('tickets', 'show', 'abc')).code).toBe(2);
  });
});

/** RFC 4180: records end with CRLF; a quoted field may hold commas, CR, LF and doubled quotes. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === '"' && field === '') {
      i += 1;
      for (;;) {
        const quote = text.indexOf('"', i);
        if (quote < 0) throw new Error('unterminated quoted field');
        field += text.slice(i, quote);
        if (text[quote + 1] === '"') {
          field += '"';
          i = quote + 2;
        } else {
          i = quote + 1;
          break;
        }
      }
      if (text[i] !== ',' && text[i] !== '\r') throw new Error(`garbage after a quoted field at ${i}`);
    } else if (text[i] === ',') {
      record.push(field);
      field = '';
      i += 1;
    } else if (text[i] === '\r' && text[i + 1] === '\n') {
      record.push(field);
      records.push(record);
      field = '';
      record = [];
      i += 2;
    } else {
      const ch = text[i] ?? '';
      if (ch === '\n' || ch === '\r' || ch === '"') throw new Error(`bare ${JSON.stringify(ch)} in an unquoted field at ${i}`);
      field += ch;
      i += 1;
    }
  }
  if (field !== '' || record.length > 0) throw new Error('the last record does not end with CRLF');
  return records;
}

describe('mailpoll tickets export', () => {
  it('writes one JSON object per line, one per message, that parse back to the stored values', async () => {
    const r = await mailpoll('tickets', 'export', '--format', 'jsonl');
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(r.stdout).not.toContain('\u2028');
    const rows = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((row) => row.ticket)).toEqual([1001, 1001, 1001, 1002, 1003]);
    expect(rows[0]).toMatchObject({ ticketSubject: 'Printer on fire, "again"', fromName: 'Alice Example', class: 'normal', text: TRICKY_BODY.replaceAll('\r\n', '\n') });
    expect(rows[1]).toMatchObject({ fromAddress: 'bob@example.com', attachments: 2, to: 'support@example.com' });
    expect(rows[2]).toMatchObject({ class: 'auto-reply' });
    expect(rows[3]).toMatchObject({ subject: ENCODED_SUBJECT, fromName: 'Carla Ünal', mailbox: 'sales' });
    const stored = query<{ n: number }>(dbFile, 'SELECT COUNT(*) AS n FROM messages')[0]?.n;
    expect(rows).toHaveLength(stored ?? -1);
  });

  it('writes RFC 4180 CSV (quoted fields, doubled quotes, CRLF records, UTF-8) holding the same values as the JSONL', async () => {
    const csv = await mailpoll('tickets', 'export', '--format', 'csv');
    const jsonl = await mailpoll('tickets', 'export', '--format', 'jsonl');
    expect(csv.code).toBe(0);
    const [header, ...records] = parseCsv(csv.stdout);
    const objects = jsonl.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(header).toEqual(Object.keys(objects[0] ?? {}));
    expect(records).toHaveLength(objects.length);
    records.forEach((record, i) => {
      expect(record).toEqual(Object.values(objects[i] ?? {}).map((v) => (v === null ? '' : String(v))));
    });
    expect(csv.stdout).toContain('"Printer on fire, ""again"""');
    expect(csv.stdout).toContain('"Hi, ""team"",\nline two; semi\n');
    expect(csv.stdout).toContain(ENCODED_SUBJECT);
  });

  it('writes to --out FILE instead of stdout', async () => {
    const file = join(dir, 'export.csv');
    const r = await mailpoll('tickets', 'export', '--format', 'csv', '--out', file);
    expect(r).toMatchObject({ code: 0, stdout: '' });
    expect(readFileSync(file, 'utf8')).toBe((await mailpoll('tickets', 'export', '--format', 'csv')).stdout);
  });

  it('filters like list, and needs --format', async () => {
    const sales = await mailpoll('tickets', 'export', '--format', 'jsonl', '--mailbox', 'sales');
    expect(sales.stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as { ticket: number }).ticket)).toEqual([1002]);
    expect((await mailpoll('tickets', 'export')).code).toBe(2);
    expect((await mailpoll('tickets', 'export', '--format', 'xml')).code).toBe(2);
  });

  it('fails with exit 1 naming the file when --out cannot be written', async () => {
    const r = await mailpoll('tickets', 'export', '--format', 'csv', '--out', join(dir, 'no', 'such', 'dir', 'x.csv'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot write the export to');
  });
});

describe('mailpoll attachments save', () => {
  it('writes the exact bytes into DIR, creating DIR, and prints the path', async () => {
    const out = join(dir, 'saved', 'new-dir');
    const r = await mailpoll('attachments', 'save', String(attachmentIds['invoice.pdf']), '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${join(out, 'invoice.pdf')}\n`);
    expect(Buffer.compare(readFileSync(join(out, 'invoice.pdf')), INVOICE)).toBe(0);
  });

  it('never overwrites: a second save gets "invoice (1).pdf" and the first file is untouched', async () => {
    const out = join(dir, 'twice');
    mkdirSync(out);
    writeFileSync(join(out, 'invoice.pdf'), 'precious, not an invoice');
    const r = await mailpoll('attachments', 'save', String(attachmentIds['invoice.pdf']), '--out', out);
    expect(r.stdout).toBe(`${join(out, 'invoice (1).pdf')}\n`);
    expect(readFileSync(join(out, 'invoice.pdf'), 'utf8')).toBe('precious, not an invoice');
    expect(Buffer.compare(readFileSync(join(out, 'invoice (1).pdf')), INVOICE)).toBe(0);
  });

  it('saves an attachment named ../../evil.sh inside DIR as evil.sh, and says it renamed it', async () => {
    const out = join(dir, 'a', 'b', 'target');
    const around = (d: string) => (existsSync(d) ? readdirSync(d).sort() : []);
    const before = [around(dir), around(join(dir, 'a')), around(dirname(out))];
    const r = await mailpoll('attachments', 'save', String(attachmentIds['../../evil.sh']), '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${join(out, 'evil.sh')}\n`);
    expect(r.stderr).toContain('"../../evil.sh" is not a safe file name; saved as "evil.sh"');
    expect(readdirSync(out)).toEqual(['evil.sh']);
    expect(readFileSync(join(out, 'evil.sh'), 'utf8')).toBe(EVIL_SCRIPT.slice(0, -2));
    // Nothing appeared beside or above DIR except the directories on its own path.
    expect([around(dir), around(join(dir, 'a')), around(dirname(out))]).toEqual([
      [...new Set([...(before[0] ?? []), 'a'])].sort(),
      ['b'],
      ['target'],
    ]);
  });

  it('keeps a unicode name decoded from RFC 2231 as it is', async () => {
    const out = join(dir, 'unicode');
    const r = await mailpoll('attachments', 'save', String(attachmentIds['Grüße aus Köln.txt']), '--out', out);
    expect(r).toMatchObject({ code: 0, stderr: '', stdout: `${join(out, 'Grüße aus Köln.txt')}\n` });
    expect(readFileSync(join(out, 'Grüße aus Köln.txt'), 'utf8')).toBe('hallo');
  });

  it('fails with exit 1 for an unknown attachment id, writing nothing', async () => {
    const out = join(dir, 'unknown');
    const r = await mailpoll('attachments', 'save', '999999', '--out', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('there is no attachment with id 999999');
    expect(existsSync(out)).toBe(false);
  });
});
