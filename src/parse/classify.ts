import { headerFields, splitHeader, stripAngles } from './raw-headers.js';
import type { ParsedMessage } from './types.js';

export type MessageClass = 'normal' | 'auto-reply' | 'bounce';

/** What kind of message this is, decided from its headers and MIME structure alone. */
export interface Classification {
  class: MessageClass;
  /** Why, for logs and the database, e.g. 'Auto-Submitted: auto-replied', 'multipart/report delivery-status'. */
  reason: string;
  /**
   * Bounces only: Message-IDs (no angle brackets) of the original message(s) found inside the
   * report, most likely first: the Message-ID of each returned message, then the ids that message
   * itself answered (its In-Reply-To, then References newest first), so a bounce of an outgoing
   * reply that was never stored here can still find the ticket it belongs to. Never the bounce's
   * own Message-ID. Empty for other classes.
   */
  originalMessageIds: string[];
}

/**
 * Sorts a message into normal mail, an automatic reply (RFC 3834) or a bounce (RFC 3464 DSN and
 * the older free-text kinds). Bounces are checked first: most MTAs also mark them Auto-Submitted.
 * Works on the raw bytes (latin1 is lossless and every marker is ASCII), so it gives the same
 * answer whether or not mailparser coped with the message; `parsed` only supplies the decoded
 * subject, sender and text. Never throws: what cannot be read counts as normal.
 */
export function classify(raw: Buffer, parsed: ParsedMessage): Classification {
  try {
    const mail = readMail(raw);
    const bounce = bounceReason(mail, parsed);
    if (bounce !== undefined) {
      return { class: 'bounce', reason: bounce, originalMessageIds: attempt(() => originalMessageIds(mail, parsed), []) };
    }
    const auto = autoReplyReason(mail, parsed);
    if (auto !== undefined) return { class: 'auto-reply', reason: auto, originalMessageIds: [] };
  } catch {
    // Garbage in: fall through to normal, the message is stored either way.
  }
  return { class: 'normal', reason: '', originalMessageIds: [] };
}

// ---------------------------------------------------------------------------------------------
// Reading the message: header fields, the top-level Content-Type and a lazily walked MIME tree.

interface ContentType {
  type: string;
  params: Map<string, string>;
}

interface MimePart {
  contentType: ContentType;
  fields: Map<string, string[]>;
  /** Undecoded body, latin1. */
  body: string;
}

interface MimeTree {
  /** Non-multipart parts of the report itself; never descends into a message/* part. */
  leaves: MimePart[];
  /** A multipart had no usable boundary, so the leaves are incomplete. */
  broken: boolean;
}

interface Mail {
  fields: Map<string, string[]>;
  contentType: ContentType;
  bodyBytes: Buffer;
  /** The body as latin1 text, made on first use. */
  readonly body: string;
  tree: () => MimeTree;
}

function readMail(raw: Buffer): Mail {
  const { header, body } = splitHeader(raw);
  const fields = headerFields(header);
  const contentType = parseContentType(first(fields, 'content-type'), 'text/plain');
  // The body as text only when a rule needs it: most mail is classified from its header alone,
  // and a string copy of a 70 MB message costs more than the rest of its processing.
  let text: string | undefined;
  const bodyText = () => (text ??= body.toString('latin1'));
  let tree: MimeTree | undefined;
  return {
    fields,
    contentType,
    bodyBytes: body,
    get body() {
      return bodyText();
    },
    tree: () => {
      if (tree === undefined) {
        tree = { leaves: [], broken: false };
        walk({ contentType, fields, body: bodyText() }, 0, tree);
      }
      return tree;
    },
  };
}

const MAX_DEPTH = 8;
const MAX_PARTS = 500;

function walk(part: MimePart, depth: number, tree: MimeTree): void {
  if (tree.leaves.length >= MAX_PARTS) return;
  const { type, params } = part.contentType;
  if (!type.startsWith('multipart/')) {
    tree.leaves.push(part);
    return;
  }
  const boundary = params.get('boundary');
  const chunks = boundary === undefined || boundary === '' || depth >= MAX_DEPTH ? undefined : splitMultipart(part.body, boundary);
  if (chunks === undefined) {
    tree.broken = true;
    return;
  }
  // RFC 2046 section 5.1.5: inside multipart/digest a part without Content-Type is a message.
  const fallbackType = type === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
  for (const chunk of chunks) {
    const { head, body } = splitHead(chunk);
    const fields = headerFields(Buffer.from(head, 'latin1'));
    walk({ contentType: parseContentType(first(fields, 'content-type'), fallbackType), fields, body }, depth + 1, tree);
  }
}

/** The body parts between the delimiter lines of a multipart (RFC 2046 section 5.1.1). */
function splitMultipart(body: string, boundary: string): string[] | undefined {
  const delimiter = new RegExp(`^--${escapeRegExp(boundary)}(--)?[ \\t]*\\r?$`, 'gm');
  const hits = [...body.matchAll(delimiter)];
  if (hits.length === 0) return undefined;
  const chunks: string[] = [];
  for (let i = 0; i < hits.length && chunks.length < MAX_PARTS; i++) {
    const hit = hits[i];
    if (hit === undefined || hit[1] === '--') break;
    let start = hit.index + hit[0].length;
    if (body[start] === '\n') start++;
    const next = hits[i + 1];
    let end = next === undefined ? body.length : next.index;
    // The line break before a delimiter belongs to the delimiter.
    if (next !== undefined && body[end - 1] === '\n') end--;
    if (next !== undefined && body[end - 1] === '\r') end--;
    chunks.push(body.slice(start, Math.max(start, end)));
  }
  return chunks;
}

/** Header block and body of a body part; a part that starts with a blank line has no header. */
function splitHead(text: string): { head: string; body: string } {
  if (text.startsWith('\r\n')) return { head: '', body: text.slice(2) };
  if (text.startsWith('\n')) return { head: '', body: text.slice(1) };
  const crlf = text.indexOf('\r\n\r\n');
  const lf = text.indexOf('\n\n');
  if (crlf === -1 && lf === -1) return { head: text, body: '' };
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { head: text.slice(0, crlf), body: text.slice(crlf + 4) };
  return { head: text.slice(0, lf), body: text.slice(lf + 2) };
}

function parseContentType(value: string | undefined, fallback: string): ContentType {
  const params = new Map<string, string>();
  if (value === undefined) return { type: fallback, params };
  const clean = stripComments(value);
  const semi = clean.indexOf(';');
  const type = (semi === -1 ? clean : clean.slice(0, semi)).trim().toLowerCase();
  if (semi !== -1) {
    for (const m of clean.slice(semi).matchAll(/;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g)) {
      const name = (m[1] ?? '').toLowerCase();
      let v = (m[2] ?? '').trim();
      if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
      if (!params.has(name)) params.set(name, v);
    }
  }
  return { type: /^[^\s/]+\/[^\s/]+$/.test(type) ? type : fallback, params };
}

function decodeBody(part: MimePart): string {
  const cte = (first(part.fields, 'content-transfer-encoding') ?? '').trim().toLowerCase();
  if (cte === 'base64') return Buffer.from(part.body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64').toString('latin1');
  if (cte === 'quoted-printable') {
    return part.body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
  return part.body;
}

// ---------------------------------------------------------------------------------------------
// Bounces (RFC 3464 / RFC 6522 delivery status notifications, and the free-text kinds).

const DSN_PART_TYPES = new Set(['message/delivery-status', 'message/global-delivery-status']);
const DSN_REPORT_TYPES = new Set(['delivery-status', 'global-delivery-status']);
/** The report parts that carry the returned message, or only its header (RFC 6522, RFC 6533). */
const RETURNED_PART_TYPES = new Set(['message/rfc822', 'message/global', 'text/rfc822-headers', 'message/global-headers']);
const BOUNCE_SENDERS: Record<string, string> = { 'mailer-daemon': 'MAILER-DAEMON', postmaster: 'postmaster' };

const DSN_SUBJECT =
  /\b(?:undeliver(?:ed|able)|delivery status notification|returned mail|failure notice|mail delivery (?:failed|failure)|delivery (?:has )?failed|delivery failure|non-?deliver(?:y|able)|unable to deliver|unzustellbar|non remis)\b/i;
const DSN_BODY =
  /could ?n[o']t be delivered|was ?n[o']t delivered|delivery (?:has failed|to the following recipients? (?:failed|has been delayed))|undeliverable|permanent (?:fatal )?errors?|this is the mail system at host|created automatically by mail delivery software|returned to sender|mail delivery (?:failed|subsystem)/i;

function bounceReason(mail: Mail, parsed: ParsedMessage): string | undefined {
  const { type, params } = mail.contentType;
  const reportType = (params.get('report-type') ?? '').toLowerCase();
  if (type === 'multipart/report' && DSN_REPORT_TYPES.has(reportType)) return `multipart/report ${reportType}`;

  // A DSN part anywhere in the report's own structure, e.g. an Exchange NDR wrapped in
  // multipart/mixed; a bounce forwarded by a human as a message/rfc822 attachment is not one.
  if (mayHoldDsnPart(mail) && /content-type:\s*message\/(?:global-)?delivery-status/i.test(mail.body)) {
    const tree = mail.tree();
    const part = tree.leaves.find((leaf) => DSN_PART_TYPES.has(leaf.contentType.type));
    if (part !== undefined) return `${part.contentType.type} part`;
    if (tree.broken) return 'message/delivery-status part';
  }

  // Exim names the recipients that failed in this header.
  if (mail.fields.has('x-failed-recipients')) return 'X-Failed-Recipients';

  for (const address of [parsed.from?.address, addressIn(first(mail.fields, 'from'))]) {
    const local = localPart(address);
    const sender = local === undefined ? undefined : BOUNCE_SENDERS[local.toLowerCase()];
    if (sender !== undefined) return `From: ${sender}`;
  }

  // RFC 5321 section 4.5.5: a DSN is sent with the null reverse-path, which the final delivery
  // records as `Return-Path: <>`. Auto-replies use it too (RFC 3834 section 3.3), so it counts
  // only with a subject or body that reads like a delivery report.
  if (hasNullReturnPath(mail)) {
    if (DSN_SUBJECT.test(parsed.subject ?? first(mail.fields, 'subject') ?? '')) return 'Return-Path: <> with DSN subject';
    if (DSN_BODY.test((parsed.text ?? mail.body).slice(0, 65_536))) return 'Return-Path: <> with DSN body';
  }
  return undefined;
}

const DELIVERY = Buffer.from('delivery', 'latin1');

/**
 * A cheap byte-level look before the text scan: only a multipart can hold a DSN part, and only
 * one whose bytes say "delivery-" (in any case), which the regex in bounceReason requires. So
 * this filter never changes the answer; it only spares the latin1 copy and the regex. It visits
 * each "-" (memchr, in native code) and compares the eight bytes before it: base64 has no "-", so
 * the attachments, most of a message's bytes, are skipped at memchr speed, where a search for a
 * word read them at a quarter of that.
 */
function mayHoldDsnPart(mail: Mail): boolean {
  if (!mail.contentType.type.startsWith('multipart/')) return false;
  const bytes = mail.bodyBytes;
  const word = DELIVERY;
  for (let dash = bytes.indexOf(0x2d, word.length); dash !== -1; dash = bytes.indexOf(0x2d, dash + 1)) {
    let i = 0;
    // `| 0x20` lower-cases an ASCII letter, and maps no other byte onto one.
    while (i < word.length && ((bytes[dash - word.length + i] as number) | 0x20) === word[i]) i++;
    if (i === word.length) return true;
  }
  return false;
}

/**
 * The returned message's ids: first from the report parts that carry it (message/rfc822,
 * text/rfc822-headers and their RFC 6533 `global` forms); when none has a Message-ID, from header
 * lines in the body text (Exim's "This is a copy of the message, including all the headers",
 * qmail's "Below this line is a copy of the message", or a report whose MIME structure is broken).
 */
function originalMessageIds(mail: Mail, parsed: ParsedMessage): string[] {
  const own = parsed.messageId ?? stripAngles(first(mail.fields, 'message-id'));
  const primary: string[] = [];
  const secondary: string[] = [];
  const tree = mail.tree();

  for (const part of tree.leaves.filter((leaf) => RETURNED_PART_TYPES.has(leaf.contentType.type))) {
    // Some MTAs put a blank line before the returned header block: it is all header.
    const { head } = splitHead(decodeBody(part).replace(/^(?:[ \t]*\r?\n)+/, ''));
    const fields = headerFields(Buffer.from(head, 'latin1'));
    primary.push(...(fields.get('message-id') ?? []).flatMap((v) => idsIn(v).slice(0, 1)));
    secondary.push(...(fields.get('in-reply-to') ?? []).flatMap((v) => idsIn(v).slice(0, 1)));
    secondary.push(...(fields.get('references') ?? []).flatMap((v) => idsIn(v).reverse()));
  }

  if (primary.length === 0) {
    const texts = tree.broken
      ? [mail.body]
      : tree.leaves.filter((leaf) => !RETURNED_PART_TYPES.has(leaf.contentType.type)).map(decodeBody);
    for (const text of texts) {
      const lines = text.replace(/&lt;/gi, '<').replace(/&gt;/gi, '>').replace(/\r?\n(?=[ \t]+\S)/g, ' ');
      for (const m of lines.matchAll(/^[ \t>]*((?:x-)?(?:original-)?message-id|in-reply-to|references)[ \t]*:[ \t]*(.*)$/gim)) {
        const name = (m[1] ?? '').toLowerCase();
        const ids = idsIn(m[2] ?? '');
        if (name === 'references') secondary.push(...ids.reverse());
        else (name === 'in-reply-to' ? secondary : primary).push(...ids.slice(0, 1));
      }
    }
  }

  const out: string[] = [];
  for (const id of [...primary, ...secondary]) {
    if (id !== own && !out.includes(id) && out.length < 20) out.push(id);
  }
  return out;
}

/** Message-IDs in a header value: every `<...>`; without brackets, the first word with an '@'. */
function idsIn(value: string): string[] {
  const bracketed = [...value.matchAll(/<([^<>\s]{1,998})>/g)].map((m) => m[1] ?? '').filter((id) => id !== '');
  if (bracketed.length > 0) return bracketed;
  const bare = /[^\s<>"(),;]+@[^\s<>"(),;]+/.exec(value);
  return bare === null ? [] : [bare[0]];
}

// ---------------------------------------------------------------------------------------------
// Automatic replies (RFC 3834) and their de-facto markers.

/** Exchange's X-Auto-Response-Suppress values that mean "this sender is a machine". */
const SUPPRESS_TOKENS: Record<string, string> = { all: 'All', oof: 'OOF', autoreply: 'AutoReply', dr: 'DR', rn: 'RN', nrn: 'NRN' };
const AUTO_PRECEDENCE = new Set(['bulk', 'junk', 'list', 'auto_reply', 'auto-reply']);
const NEGATIVE = new Set(['no', 'false', '0', 'off']);

/**
 * Subject prefixes that out-of-office responders put before the original subject. Only as a
 * prefix followed by a colon: "Automatic reply not working" is a person writing about one.
 */
const AUTO_SUBJECTS = [
  'Out of Office AutoReply',
  'Out of Office Reply',
  'Out of Office',
  'Out of the Office',
  'Automatic reply',
  'Auto-reply',
  'Auto reply',
  'Autoreply',
  'Auto',
  'Abwesenheitsnotiz',
  'Abwesend',
  'Automatische Antwort',
  'Réponse automatique',
  'Respuesta automática',
  'Risposta automatica',
  'Fuori sede',
  'Automatisch antwoord',
  'Resposta automática',
  'Automatiskt svar',
].sort((a, b) => b.length - a.length);
const AUTO_SUBJECT = new RegExp(`^\\s*(${AUTO_SUBJECTS.map(escapeRegExp).join('|')})\\s*[:：]`, 'iu');

function autoReplyReason(mail: Mail, parsed: ParsedMessage): string | undefined {
  const { fields } = mail;

  // RFC 3834 section 5.1: any value but "no" marks an automatic message; the keyword may carry
  // parameters and comments, e.g. `auto-generated (failure)` or `auto-replied; owner-email=...`.
  for (const value of fields.get('auto-submitted') ?? []) {
    const keyword = keywordOf(value);
    if (keyword !== '' && keyword !== 'no') return `Auto-Submitted: ${keyword}`;
  }

  for (const [name, label] of [
    ['x-autoreply', 'X-Autoreply'],
    ['x-autorespond', 'X-Autorespond'],
    ['x-autoresponder', 'X-Autoresponder'],
  ] as const) {
    const values = fields.get(name);
    if (values === undefined) continue;
    const keyword = keywordOf(values[0] ?? '');
    if (!NEGATIVE.has(keyword)) return keyword === '' ? label : `${label}: ${keyword}`;
  }

  // X-Auto-Response-Suppress asks Exchange not to answer a message automatically. Exchange's own
  // out-of-office replies carry it, but so does mail from people (Outlook, Exchange distribution
  // lists): helpdesks that took it alone as a marker lost real mail (osTicket #5320, GLPI #2170,
  // Discourse #21367, Redmine #19558). So it counts only with the null reverse-path, which mail
  // from a person never has (RFC 5321 section 4.5.5, RFC 3834 section 3.3).
  if (hasNullReturnPath(mail)) {
    for (const value of fields.get('x-auto-response-suppress') ?? []) {
      const tokens = stripComments(value)
        .split(/[\s,;]+/)
        .map((t) => SUPPRESS_TOKENS[t.toLowerCase()])
        .filter((t): t is string => t !== undefined);
      if (tokens.length > 0) return `X-Auto-Response-Suppress: ${tokens.join(', ')} with Return-Path: <>`;
    }
  }

  for (const value of fields.get('precedence') ?? []) {
    const keyword = keywordOf(value);
    if (AUTO_PRECEDENCE.has(keyword)) return `Precedence: ${keyword}`;
  }

  // Read receipts (RFC 8098) and other non-delivery reports are machine-made too.
  if (mail.contentType.type === 'multipart/report') {
    const reportType = (mail.contentType.params.get('report-type') ?? '').toLowerCase();
    return `multipart/report ${/^[a-z0-9][a-z0-9.+-]*$/.test(reportType) ? reportType : 'unknown'}`;
  }

  const mailer = first(fields, 'x-mailer');
  if (mailer !== undefined && /auto-?\s?(?:respon(?:d|der|se)|repl(?:y|ier))/i.test(mailer)) return `X-Mailer: ${mailer}`;

  // X-MS-Exchange-Inbox-Rules-Loop is deliberately not a signal: Exchange adds it to mail that a
  // person's inbox rule forwarded too, and its real auto-replies carry Auto-Submitted anyway.
  const subject = (parsed.subject ?? first(fields, 'subject') ?? '').normalize('NFC');
  const marker = AUTO_SUBJECT.exec(subject)?.[1];
  if (marker !== undefined) {
    const canonical = AUTO_SUBJECTS.find((s) => s.toLowerCase() === marker.toLowerCase()) ?? marker;
    return `Subject: ${canonical}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

/** `Return-Path: <>`, as the final delivery records the null reverse-path; the topmost one counts. */
function hasNullReturnPath(mail: Mail): boolean {
  const returnPath = first(mail.fields, 'return-path');
  return returnPath !== undefined && /^<\s*>$/.test(stripComments(returnPath).trim());
}

function first(fields: Map<string, string[]>, name: string): string | undefined {
  return fields.get(name)?.[0];
}

/** The keyword of a structured header value: no comments, no parameters, lower case. */
function keywordOf(value: string): string {
  return (stripComments(value).split(';')[0] ?? '').trim().toLowerCase();
}

/** Removes RFC 5322 comments `(...)`, nested ones included. */
function stripComments(value: string): string {
  let out = value;
  for (let i = 0; i < 5 && /\([^()]*\)/.test(out); i++) out = out.replace(/\([^()]*\)/g, ' ');
  return out;
}

/** The addr-spec of a From value, from the raw header: `Name <a@b>`, `a@b (Name)` or a bare word. */
function addressIn(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const clean = stripComments(value);
  const angled = /<([^<>]*)>/.exec(clean);
  if (angled !== null) return angled[1]?.trim();
  const words = clean.trim().split(/[\s,]+/);
  return words.find((w) => w.includes('@')) ?? (words.length === 1 ? words[0] : undefined);
}

function localPart(address: string | undefined): string | undefined {
  if (address === undefined || address === '') return undefined;
  const at = address.lastIndexOf('@');
  return (at === -1 ? address : address.slice(0, at)).replace(/^"|"$/g, '').trim();
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function attempt<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
