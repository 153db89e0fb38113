import { createHash } from 'node:crypto';

/**
 * A minimal, parser-independent reading of a message's header block. Used where mailparser's
 * answer must not matter: the dedupe hash, and a best-effort header set for messages that
 * mailparser rejects.
 */
export function splitHeader(raw: Buffer): { header: Buffer; body: Buffer } {
  const crlf = raw.indexOf('\r\n\r\n');
  // A bare-LF blank line counts only before the CRLF one. Served mail is CRLF (RFC 3501 section
  // 2.2, RFC 1939 section 3), where "\n\n" never occurs: searching the whole message for it
  // read every byte of every attachment once more, for nothing.
  const lf = (crlf === -1 ? raw : raw.subarray(0, crlf)).indexOf('\n\n');
  if (crlf === -1 && lf === -1) return { header: raw, body: Buffer.alloc(0) };
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { header: raw.subarray(0, crlf), body: raw.subarray(crlf + 4) };
  return { header: raw.subarray(0, lf), body: raw.subarray(lf + 2) };
}

/** Unfolded header fields (RFC 5322 section 2.2.3), names lower-cased, values as latin1 text. */
export function headerFields(header: Buffer): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  const unfolded = header.toString('latin1').replace(/\r?\n(?=[ \t])/g, '');
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const list = fields.get(name) ?? [];
    list.push(line.slice(colon + 1).trim());
    fields.set(name, list);
  }
  return fields;
}

/** `<a@b>` -> `a@b`; the first id when several are given. */
export function stripAngles(id: string | undefined): string | undefined {
  if (id === undefined) return undefined;
  const match = /<([^<>]+)>/.exec(id);
  const value = (match?.[1] ?? id).trim();
  return value === '' ? undefined : value;
}

/**
 * Header fields that each receiving system adds or changes on the way in (RFC 5322 section 3.6.7
 * trace fields, delivery and filtering stamps, mailbox-state headers of local stores). They differ
 * between two deliveries of one mail, so the dedupe hash leaves them out; every other field counts.
 */
const TRACE_FIELDS = new Set([
  'received', 'return-path', 'delivered-to', 'x-original-to', 'x-delivered-to', 'envelope-to', 'x-envelope-to',
  'x-envelope-from', 'x-received', 'x-rcpt-to', 'authentication-results', 'arc-seal', 'arc-message-signature',
  'arc-authentication-results', 'received-spf', 'status', 'x-status', 'x-keywords', 'x-uid', 'lines', 'content-length',
]);
const TRACE_PREFIXES = ['resent-', 'x-spam-', 'x-virus-', 'x-ms-exchange-organization-', 'x-gm-', 'x-google-', 'x-mailpoll-'];

function isTraceField(name: string): boolean {
  return TRACE_FIELDS.has(name) || TRACE_PREFIXES.some((p) => name.startsWith(p));
}

/**
 * The identity of a message for the second dedupe layer: every header field in order except the
 * trace fields above, and the body. So the same mail delivered to two of our mailboxes, or
 * re-uploaded with a new UID, hashes the same, while two mails that differ in anything their
 * author's software wrote (a Content-Type, a Sender, one byte of body) do not. The body is hashed
 * as served (IMAP and POP3 always serve CRLF, RFC 3501 section 2.2 / RFC 1939 section 3, so line
 * endings need no normalising, which would cost more than parsing the header), less its trailing
 * line breaks: POP3 adds one before the terminating "." when a message lacks it, IMAP does not.
 */
export function dedupeHash(raw: Buffer): string {
  const { header, body } = splitHeader(raw);
  const hash = createHash('sha256');
  const unfolded = header.toString('latin1').replace(/\r?\n(?=[ \t])/g, '');
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    // Leading whitespace is kept: " From:" on the first line is not the same header as "From:".
    const name = (colon > 0 ? line.slice(0, colon) : line).trimEnd().toLowerCase();
    if (colon > 0 && isTraceField(name.trim())) continue;
    hash.update(`${name}\u0000${colon > 0 ? line.slice(colon + 1).trim() : ''}\n`, 'latin1');
  }
  hash.update('\u0001');
  let end = body.length;
  while (end > 0 && (body[end - 1] === 0x0a || body[end - 1] === 0x0d)) end--;
  hash.update(body.subarray(0, end));
  return hash.digest('hex');
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
