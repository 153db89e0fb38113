import { Readable } from 'node:stream';
import type { AddressObject, EmailAddress } from 'mailparser';
import { errorMessage } from '../errors.js';
import { decodeEncodedWords, needsOwnDecoding } from './encoded-words.js';
import { fastParse, type FastAttachment, type FastMail } from './mime-fast.js';
import { headerFields, splitHeader, stripAngles } from './raw-headers.js';
import type { Address, ParsedAttachment, ParsedMessage } from './types.js';

/**
 * Raw bytes -> ParsedMessage. Never throws: a message mailparser cannot handle comes back with
 * `parseError` set and whatever the raw header block still tells, so it is stored, not dropped.
 * Well-formed MIME takes the fast path (mime-fast.ts), which answers as mailparser would; the rest
 * goes through mailparser itself. Both are loaded lazily: a cron tick with nothing due never loads them.
 */
export async function parseMessage(raw: Buffer): Promise<ParsedMessage> {
  try {
    return toParsed(raw, (await fastParse(raw)) ?? (await mailparser(raw)));
  } catch (err) {
    return fallback(raw, errorMessage(err));
  }
}

/** What the store keeps of a parse, from either parser. */
export function toParsed(raw: Buffer, mail: FastMail): ParsedMessage {
  return {
    messageId: stripAngles(mail.messageId),
    inReplyTo: stripAngles(mail.inReplyTo),
    references: toIds(mail.references),
    subject: subjectOf(raw, mail.subject),
    from: addresses(mail.from)[0],
    replyTo: addresses(mail.replyTo),
    to: addresses(mail.to),
    cc: addresses(mail.cc),
    date: mail.date && !Number.isNaN(mail.date.getTime()) ? mail.date : undefined,
    text: mail.text,
    html: typeof mail.html === 'string' ? mail.html : undefined,
    attachments: mail.attachments.map(toAttachment),
    parseError: undefined,
  };
}

/** mailparser's simpleParser, with the options mailpoll uses. */
export async function mailparser(raw: Buffer): Promise<FastMail> {
  const { simpleParser } = await import('./parser-libraries.js');
  // Fed in 64 KiB pieces: given a 70 MB message in one piece, mailparser's line splitting holds
  // some 250 MB more at its peak (measured); in pieces it holds little beyond the attachments.
  return simpleParser(raw.length > 1024 * 1024 ? Readable.from(pieces(raw)) : raw, { skipHtmlToText: false, skipTextToHtml: true, skipImageLinks: true });
}

/** mailparser's subject, unless the raw header holds encoded-words it is known to mangle. */
function subjectOf(raw: Buffer, parsed: string | undefined): string | undefined {
  const rawSubject = headerFields(splitHeader(raw).header).get('subject')?.[0];
  if (rawSubject === undefined || !needsOwnDecoding(rawSubject)) return parsed;
  return decodeEncodedWords(rawSubject);
}

function* pieces(raw: Buffer, size = 64 * 1024): Generator<Buffer> {
  for (let at = 0; at < raw.length; at += size) yield raw.subarray(at, at + size);
}

function fallback(raw: Buffer, parseError: string): ParsedMessage {
  const fields = headerFields(splitHeader(raw).header);
  const first = (name: string) => fields.get(name)?.[0];
  return {
    messageId: stripAngles(first('message-id')),
    inReplyTo: stripAngles(first('in-reply-to')),
    references: toIds(first('references')),
    subject: first('subject'),
    from: undefined,
    replyTo: [],
    to: [],
    cc: [],
    date: undefined,
    text: undefined,
    html: undefined,
    attachments: [],
    parseError,
  };
}

function toIds(value: string | string[] | undefined): string[] {
  const text = Array.isArray(value) ? value.join(' ') : (value ?? '');
  return [...text.matchAll(/<([^<>\s]+)>/g)].map((m) => m[1] ?? '').filter((id) => id !== '');
}

function addresses(value: AddressObject | AddressObject[] | undefined): Address[] {
  const out: Address[] = [];
  const visit = (list: EmailAddress[]) => {
    for (const entry of list) {
      if (entry.group) visit(entry.group);
      else if (entry.address) out.push({ name: entry.name ?? '', address: entry.address });
    }
  };
  for (const obj of value === undefined ? [] : Array.isArray(value) ? value : [value]) visit(obj.value);
  return out;
}

function toAttachment(a: FastAttachment): ParsedAttachment {
  return {
    filename: a.filename ?? defaultName(a),
    contentType: a.contentType,
    size: a.content.length,
    contentId: stripAngles(a.contentId),
    inline: a.contentDisposition === 'inline' || a.related === true,
    content: a.content,
  };
}

/**
 * A forwarded message (message/rfc822, RFC 2046 section 5.2.1) is kept as an attachment that opens
 * as a mail: it gets a `.eml` name from its subject when the sender gave it none.
 */
function defaultName(a: FastAttachment): string | undefined {
  if (a.contentType !== 'message/rfc822' && a.contentType !== 'message/global') return undefined;
  const subject = /^subject:[ \t]*(.*)$/im.exec(a.content.subarray(0, 16 * 1024).toString('latin1'))?.[1]?.trim();
  const stem = (subject ?? '').replace(/[^\p{L}\p{N} ._-]+/gu, '').trim().slice(0, 80);
  return `${stem || 'forwarded message'}.eml`;
}
