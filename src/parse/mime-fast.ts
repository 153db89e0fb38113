import type { AddressObject } from 'mailparser';

/**
 * A fast path in front of mailparser for the well-formed MIME that makes up most mail: it gives
 * exactly what mailparser's simpleParser gives (the same header, charset, address and filename
 * decoding, by calling the same libraries), but finds the structure with Buffer.indexOf and decodes
 * bodies in one native call each, instead of mailparser's byte-by-byte line splitter and chains of
 * streams. That splitter cost about 1 ms of CPU per message of a realistic mix.
 *
 * It declines (returns undefined, and mailparser parses the message) whenever its answer could
 * differ: anything outside strict CRLF MIME structure, embedded messages (message/*), multipart/digest,
 * HTML that mailparser would turn into text or whose cid: links it would rewrite,
 * base64 with characters Node decodes and mailparser skips. test/unit/mime-fast.test.ts and the
 * corpus run check that every message it accepts parses to the same result as mailparser's.
 */

/** The parts of mailparser's ParsedMail that parse-message.ts reads. */
export interface FastMail {
  subject?: string;
  messageId?: string;
  inReplyTo?: string;
  references?: string | string[];
  date?: Date;
  from?: AddressObject;
  to?: AddressObject | AddressObject[];
  cc?: AddressObject | AddressObject[];
  replyTo?: AddressObject;
  text?: string;
  html?: string | false;
  attachments: FastAttachment[];
}

export interface FastAttachment {
  contentType: string;
  content: Buffer;
  filename?: string;
  contentDisposition?: string;
  contentId?: string;
  related?: boolean;
}

// ---- the library pieces mailparser is built from (typed here: their declarations omit them) ----

interface MimeNodeLike {
  addHeaderChunk(line: Buffer): boolean;
  parseHeaders(): void;
  headers: { getList(): unknown[] };
  contentType: string | false;
  charset: string | false;
  disposition: string | false;
  filename: string | false;
  encoding: string;
  flowed: boolean;
  delSp: boolean;
  multipart: string | false;
  _boundary: Buffer | false;
}
interface Libraries {
  newNode: () => MimeNodeLike;
  /** mailparser's own header decoding: encoded-words, addresses, Message-IDs, dates. */
  processHeaders: (lines: unknown[]) => Map<string, unknown>;
  detectMimeType: (filename: string) => string | false;
  /** RFC 3676 format=flowed, on the transfer-decoded bytes read as binary. */
  decodeFlowed: (binary: string, delSp: boolean) => string;
  decodeCharset: (bytes: Buffer, charset: string) => string;
  decodeQp: (bytes: Buffer) => Buffer;
}

let libraries: Promise<Libraries> | undefined;

/**
 * Loads the parser libraries (parser-libraries.ts) once. The analysis worker calls it at start, so
 * they load while the first messages download rather than when the first one is already waiting.
 */
export function loadParser(): Promise<Libraries> {
  libraries ??= import('./parser-libraries.js').then(({ parserLibraries: lib }) => {
    const MailParser = lib.MailParser as new (options: object) => { processHeaders(lines: unknown[]): Map<string, unknown> };
    const MimeNode = lib.MimeNode as new (parent: false, config: object) => MimeNodeLike;
    // One parser instance lends its header processing; it never receives a byte of input.
    const parser = new MailParser({});
    return {
      newNode: () => new MimeNode(false, {}),
      processHeaders: (lines) => parser.processHeaders(lines),
      detectMimeType: lib.detectMimeType,
      decodeFlowed: lib.decodeFlowed,
      decodeCharset: lib.decodeCharset,
      decodeQp: lib.decodeQp,
    };
  });
  // A failed load is tried again by the next caller, who then sees the error.
  libraries.catch(() => (libraries = undefined));
  return libraries;
}

// ---- structure ----

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const MAX_HEADER_BYTES = 64 * 1024;
const MAX_DEPTH = 8;
const MAX_PARTS = 200;
/** mailparser's text types (with keepDeliveryStatus off); message/delivery-status is declined. */
const TEXT_TYPES = new Set(['text/plain', 'text/html']);

/** The header fields fastParse returns (as simpleParser copies them), and what a part needs. */
const ROOT_FIELDS = new Set(['subject', 'message-id', 'in-reply-to', 'references', 'date', 'from', 'to', 'cc', 'reply-to', 'content-id']);
const PART_FIELDS = new Set(['content-id']);

/** Thrown inside the fast path when mailparser must decide; never escapes fastParse. */
class Decline extends Error {}

interface Node {
  mime: MimeNodeLike;
  headers: Map<string, unknown>;
  contentType: string;
  parent: Node | undefined;
  children: Node[];
  /** Inline text/plain or text/html: its decoded text, CRLF turned into LF. */
  textContent?: string;
}

interface Walk {
  attachments: FastAttachment[];
  hasText: boolean;
  hasHtml: boolean;
  parts: number;
}

/** The fast parse of `raw`, or undefined when mailparser must parse it (see above). */
export async function fastParse(raw: Buffer): Promise<FastMail | undefined> {
  const lib = await loadParser();
  try {
    const walk: Walk = { attachments: [], hasText: false, hasHtml: false, parts: 0 };
    const root = buildNode(lib, raw, undefined, 0, walk);
    const { text, html } = textContent(root, walk);
    if (html !== false && /cid:/i.test(html)) throw new Decline('cid: links are rewritten by mailparser');
    const h = root.headers;
    const get = <T>(key: string) => h.get(key) as T | undefined;
    return {
      subject: get('subject'),
      messageId: get('message-id'),
      inReplyTo: get('in-reply-to'),
      references: get('references'),
      date: get('date'),
      from: get('from'),
      to: get('to'),
      cc: get('cc'),
      replyTo: get('reply-to'),
      text,
      html,
      attachments: walk.attachments,
    };
  } catch {
    // A Decline, or anything unexpected: mailparser has the last word either way.
    return undefined;
  }
}

function buildNode(lib: Libraries, bytes: Buffer, parent: Node | undefined, depth: number, walk: Walk): Node {
  if (++walk.parts > MAX_PARTS || depth > MAX_DEPTH) throw new Decline('too deep or too many parts');
  const { header, body } = splitHead(bytes);
  // An empty body part: mailsplit keeps the CRLF before the next delimiter as its body then.
  if (parent !== undefined && body.length === 0) throw new Decline('empty body part');
  const mime = lib.newNode();
  mime.addHeaderChunk(header);
  mime.parseHeaders();
  const contentType = mime.contentType;
  if (contentType === false || contentType.startsWith('message/') || contentType === 'multipart/digest') {
    throw new Decline(`content type ${String(contentType)}`);
  }
  // mailparser decodes every header line; each line is decoded on its own, so decoding only the
  // fields read here gives the same values at a fraction of the cost (Received, DKIM-Signature...).
  const wanted = parent === undefined ? ROOT_FIELDS : PART_FIELDS;
  const lines = (mime.headers.getList() as { key: string }[]).filter((line) => wanted.has(line.key));
  const node: Node = { mime, headers: lib.processHeaders(lines), contentType, parent, children: [] };
  if (mime.multipart !== false) {
    if (mime._boundary === false) throw new Decline('multipart without a usable boundary');
    for (const part of splitMultipart(body, mime._boundary)) node.children.push(buildNode(lib, part, node, depth + 1, walk));
    return node;
  }
  leaf(lib, node, body, walk);
  return node;
}

/**
 * Header block (with the empty line that ends it, as mailsplit hands it to MimeNode) and body.
 * Only CRLF line ends: with a bare LF in the header, where the block ends depends on details of
 * mailsplit's line reader that are not worth copying.
 */
function splitHead(bytes: Buffer): { header: Buffer; body: Buffer } {
  if (bytes[0] === CR && bytes[1] === LF) return { header: bytes.subarray(0, 2), body: bytes.subarray(2) };
  const end = bytes.indexOf('\r\n\r\n');
  if (end === -1 || end + 4 > MAX_HEADER_BYTES) throw new Decline('no header end, or a very long header');
  const header = bytes.subarray(0, end + 4);
  for (let at = header.indexOf(LF); at !== -1; at = header.indexOf(LF, at + 1)) {
    if (header[at - 1] !== CR) throw new Decline('bare LF in the header');
  }
  return { header, body: bytes.subarray(end + 4) };
}

/**
 * The body parts of a multipart (RFC 2046 section 5.1.1): between delimiter lines `--boundary`,
 * up to the close delimiter `--boundary--`; the CRLF before a delimiter belongs to it. The preamble
 * and epilogue are dropped, as mailparser drops them. A line that starts like a delimiter but is
 * not one in the strict CRLF form, or no close delimiter, declines.
 */
function splitMultipart(body: Buffer, boundary: Buffer): Buffer[] {
  const dashes = Buffer.concat([Buffer.from('--'), boundary]);
  const parts: Buffer[] = [];
  let partStart = -1;
  for (let at = body.indexOf(dashes); at !== -1; at = body.indexOf(dashes, at + 1)) {
    if (at > 0 && body[at - 1] !== LF) continue; // not at the start of a line: content
    if (at > 0 && body[at - 2] !== CR) throw new Decline('bare LF before a delimiter');
    let i = at + dashes.length;
    const close = body[i] === DASH && body[i + 1] === DASH;
    if (close) i += 2;
    else if (body[i] === DASH) continue; // "--boundary-x": content
    while (body[i] === 0x20 || body[i] === 0x09) i++;
    const lineEnd = i >= body.length ? (close ? i : -1) : body[i] === CR && body[i + 1] === LF ? i + 2 : -1;
    if (lineEnd === -1) {
      if (i < body.length && body[i] !== CR && body[i] !== LF) continue; // a longer word: content
      throw new Decline('delimiter line with an unusual ending');
    }
    if (partStart !== -1) {
      const end = at - 2;
      if (end < partStart) throw new Decline('empty body part');
      parts.push(body.subarray(partStart, end));
    }
    if (close) {
      if (parts.length === 0) throw new Decline('multipart without parts');
      return parts;
    }
    partStart = lineEnd;
  }
  throw new Decline('multipart without a close delimiter');
}

// ---- leaves: mailparser's createNode and processChunk, for one body part ----

function leaf(lib: Libraries, node: Node, body: Buffer, walk: Walk): void {
  const { mime, contentType } = node;
  let disposition = mime.disposition;
  if (disposition !== false && disposition !== 'attachment' && disposition !== 'inline') disposition = 'attachment';
  const nodeDisposition = disposition === false && !TEXT_TYPES.has(contentType) ? 'attachment' : disposition || 'inline';
  const isAttachment = !TEXT_TYPES.has(contentType) || nodeDisposition !== 'inline';
  const content = transferDecode(lib, mime.encoding, body);
  if (isAttachment) {
    const attachment: FastAttachment = {
      contentType: contentType === 'application/octet-stream' && mime.filename ? lib.detectMimeType(mime.filename) || contentType : contentType,
      content,
    };
    if (mime.disposition) attachment.contentDisposition = mime.disposition;
    if (mime.filename) attachment.filename = mime.filename;
    const contentId = node.headers.get('content-id');
    if (typeof contentId === 'string') {
      attachment.contentId = contentId;
      for (let p = node.parent; p !== undefined; p = p.parent) if (p.contentType === 'multipart/related') attachment.related = true;
    }
    walk.attachments.push(attachment);
    return;
  }
  if (contentType === 'text/plain') walk.hasText = true;
  else walk.hasHtml = true;
  // format=flowed (text/plain only) is undone before the charset, as mailsplit's FlowedDecoder does.
  const bytes = mime.flowed && content.length > 0 ? Buffer.from(lib.decodeFlowed(content.toString('binary'), mime.delSp), 'binary') : content;
  const charset = mime.charset || 'utf-8';
  // As mailparser: us-ascii and utf-8 are read as UTF-8; other charsets go through libmime, whose
  // output mailparser turns into a UTF-8 Buffer and back (so lone surrogates become U+FFFD).
  const text = ['ascii', 'usascii', 'utf8'].includes(charset.toLowerCase().replace(/[^a-z0-9]+/g, ''))
    ? bytes.toString()
    : Buffer.from(lib.decodeCharset(bytes, charset)).toString();
  node.textContent = text.replace(/\r?\n/g, '\n');
}

/**
 * Content-Transfer-Encoding (RFC 2045 section 6). Base64 is decoded natively; Node reads `-`, `_`
 * (base64url) and data after a `=` where libbase64 skips or restarts, so those decline.
 */
function transferDecode(lib: Libraries, encoding: string, body: Buffer): Buffer {
  if (encoding === 'quoted-printable') return lib.decodeQp(body);
  if (encoding !== 'base64') return body;
  if (body.indexOf(DASH) !== -1 || body.indexOf(0x5f) !== -1) throw new Decline('base64url characters');
  const pad = body.indexOf(0x3d);
  if (pad !== -1) {
    for (let i = pad; i < body.length; i++) {
      const c = body[i];
      if (c !== 0x3d && c !== CR && c !== LF && c !== 0x20 && c !== 0x09) throw new Decline('base64 data after padding');
    }
  }
  return decodeBase64(body);
}

/**
 * Base64 in slices of whole lines, so a large attachment is never also held as one big string.
 * The slices are small enough for V8's young generation: larger strings go straight to the
 * large-object space and linger until a full GC (a 72 MB message left some 90 MB of them).
 */
function decodeBase64(body: Buffer): Buffer {
  const SLICE = 64 * 1024;
  if (body.length <= 4 * 1024 * 1024) return Buffer.from(body.toString('latin1'), 'base64');
  const out = Buffer.allocUnsafe(Math.ceil((body.length * 3) / 4));
  let written = 0;
  let carry = '';
  for (let start = 0; start < body.length; ) {
    const lf = body.indexOf(LF, Math.min(start + SLICE, body.length - 1));
    const end = lf === -1 ? body.length : lf + 1;
    // Only whole quartets go out; the rest waits for the next slice (a line need not hold a
    // multiple of four characters).
    const chars = carry + body.toString('latin1', start, end).replace(/[^A-Za-z0-9+/=]/g, '');
    const whole = end === body.length ? chars.length : chars.length - (chars.length % 4);
    written += out.write(chars.slice(0, whole), written, 'base64');
    carry = chars.slice(whole);
    start = end;
  }
  return out.subarray(0, written);
}

// ---- text and html: mailparser's getTextContent ----

function textContent(root: Node, walk: Walk): { text: string | undefined; html: string | false } {
  const text: string[] = [];
  const html: string[] = [];
  const visit = (node: Node, inAlternative: boolean): void => {
    const content = node.textContent;
    if (content) {
      if (node.contentType === 'text/plain') {
        text.push(content);
        // mailparser adds its text-to-HTML rendering here, which skipTextToHtml makes ''.
        if (!inAlternative && walk.hasHtml) html.push('');
      } else {
        if ((!inAlternative && walk.hasText) || (node === root && !walk.hasText)) throw new Decline('HTML to be turned into text');
        html.push(content);
      }
    }
    const alternative = inAlternative || node.contentType === 'multipart/alternative';
    for (const child of node.children) visit(child, alternative);
  };
  visit(root, false);
  return { text: text.length > 0 ? text.join('\n') : undefined, html: html.length > 0 ? html.join('<br/>\n') : false };
}
