/**
 * IMAP responses off the wire, without I/O: framing (lines and the literals between them) and the
 * little of their grammar that a fetch session reads (RFC 3501 section 7, RFC 9051 section 7).
 * imap-wire.ts feeds it the socket's chunks.
 */

/** A literal left unread because it was over the limit: its bytes were skipped, never held. */
export const DROPPED = Symbol('dropped literal');

/**
 * One whole response: its text with each literal's `{n}` (or `~{n}`, RFC 3516) and the CRLF after
 * it kept, so the grammar can find where each literal was, and the literals themselves in order.
 */
export interface ImapResponse {
  text: string;
  literals: (Buffer | typeof DROPPED)[];
}

export class ImapFramingError extends Error {}

/** `{123}` or `~{123}` at the end of a line: a literal of that many octets follows the CRLF. */
const LITERAL_AT_END = /~?\{(\d{1,15})\}$/;

/**
 * Splits the stream into responses. A literal is copied straight from the chunks into one buffer
 * of its announced size, allocated once: a 50 MB message is held once, not collected in pieces and
 * joined. Lines are bounded (`maxTextBytes` for a response's text, literals excluded): a server
 * that never ends a line cannot make this grow without limit.
 */
export class ResponseFramer {
  private lineParts: Buffer[] = [];
  private lineBytes = 0;
  private text = '';
  private literals: (Buffer | typeof DROPPED)[] = [];
  /** The literal being read: its buffer (or DROPPED) and how many of its octets are still due. */
  private literal: Buffer | typeof DROPPED | undefined;
  private literalFilled = 0;
  private literalDue = 0;

  constructor(
    /** Whether a literal of this size is kept; one that is not is skipped over (DROPPED). */
    private readonly keepLiteral: (size: number) => boolean,
    private readonly maxTextBytes = 1024 * 1024,
  ) {}

  /** Octets of the literal in transfer that are still to come (0 between literals). */
  get literalPending(): number {
    return this.literalDue;
  }

  /** Feeds one chunk; returns the responses it completed, in order. Throws ImapFramingError. */
  push(chunk: Buffer): ImapResponse[] {
    const done: ImapResponse[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.literalDue > 0) {
        const take = Math.min(this.literalDue, chunk.length - at);
        if (this.literal !== DROPPED && this.literal !== undefined) chunk.copy(this.literal, this.literalFilled, at, at + take);
        this.literalFilled += take;
        this.literalDue -= take;
        at += take;
        if (this.literalDue === 0) this.endLiteral();
        continue;
      }
      const lf = chunk.indexOf(10, at);
      const end = lf < 0 ? chunk.length : lf + 1;
      this.lineBytes += end - at;
      if (this.text.length + this.lineBytes > this.maxTextBytes) {
        throw new ImapFramingError(`a response line is longer than ${this.maxTextBytes} bytes`);
      }
      this.lineParts.push(chunk.subarray(at, end));
      at = end;
      if (lf >= 0) {
        const response = this.endLine();
        if (response !== undefined) done.push(response);
      }
    }
    // The parts of an unfinished line are views of this chunk: keep copies, not the whole chunk.
    if (this.lineParts.length > 0) this.lineParts = [Buffer.from(Buffer.concat(this.lineParts))];
    return done;
  }

  private endLine(): ImapResponse | undefined {
    const line = this.lineParts.length === 1 ? (this.lineParts[0] as Buffer) : Buffer.concat(this.lineParts);
    this.lineParts = [];
    this.lineBytes = 0;
    // The text is the server's words, UTF-8 where UTF8=ACCEPT allows it (RFC 6855); the grammar
    // read here is ASCII. A bare LF ends a line too: servers that send one mean it.
    const ending = line.length >= 2 && line[line.length - 2] === 13 ? 2 : 1;
    const content = line.toString('utf8', 0, line.length - ending);
    const literal = LITERAL_AT_END.exec(content);
    if (literal !== null) {
      const size = Number(literal[1]);
      this.text += `${content}\r\n`;
      this.literal = size === 0 ? Buffer.alloc(0) : this.keepLiteral(size) ? Buffer.allocUnsafe(size) : DROPPED;
      this.literalFilled = 0;
      this.literalDue = size;
      if (size === 0) this.endLiteral();
      return undefined;
    }
    const response = { text: this.text + content, literals: this.literals };
    this.text = '';
    this.literals = [];
    return response;
  }

  private endLiteral(): void {
    this.literals.push(this.literal as Buffer | typeof DROPPED);
    this.literal = undefined;
    this.literalFilled = 0;
  }
}

/** A tagged status response: `tag OK|NO|BAD [code] text`. */
export interface TaggedStatus {
  tag: string;
  status: 'OK' | 'NO' | 'BAD';
  /** The response code's atom, e.g. ALREADYEXISTS (RFC 5530), upper case. */
  code: string | undefined;
  text: string;
}

const TAGGED = /^([^\s*+]+) (OK|NO|BAD)(?: \[([^\]]*)\])?(?: (.*))?$/is;

export function taggedStatus(text: string): TaggedStatus | undefined {
  const m = TAGGED.exec(text);
  if (m === null) return undefined;
  const code = m[3]?.split(' ')[0]?.toUpperCase();
  return { tag: m[1] as string, status: (m[2] as string).toUpperCase() as TaggedStatus['status'], code: code || undefined, text: (m[4] ?? '').trim() };
}

/** `* BYE text`: the server is closing the connection (RFC 3501 section 7.1.5). */
export function byeText(text: string): string | undefined {
  const m = /^\* BYE(?: (.*))?$/is.exec(text);
  return m === null ? undefined : (m[1] ?? '').trim();
}

/** A FETCH data item's value: atom or number or quoted string, literal, NIL (null), or a list. */
export type FetchValue = string | Buffer | typeof DROPPED | null | FetchValue[];

const FETCH_START = /^\* (\d+) FETCH \(/i;

/**
 * The data items of an untagged FETCH response, keyed by name in upper case (`UID`, `BODY[]`,
 * `BODY[HEADER]`; a partial `BODY[]<0>` keeps its origin), or undefined for any other response.
 * Throws ImapFramingError on a FETCH response it cannot read.
 */
export function fetchItems(response: ImapResponse): Map<string, FetchValue> | undefined {
  const start = FETCH_START.exec(response.text);
  if (start === null) return undefined;
  const scanner = new Scanner(response, start[0].length);
  const items = new Map<string, FetchValue>();
  for (;;) {
    scanner.spaces();
    if (scanner.take(')')) return items;
    const name = scanner.itemName();
    scanner.spaces();
    items.set(name.toUpperCase(), scanner.value(0));
  }
}

/** Reads the grammar of a FETCH response's item list; literals come from the response in order. */
class Scanner {
  private nextLiteral = 0;

  constructor(
    private readonly response: ImapResponse,
    private at: number,
  ) {}

  private get text(): string {
    return this.response.text;
  }

  spaces(): void {
    while (this.text[this.at] === ' ') this.at++;
  }

  take(char: string): boolean {
    if (this.text[this.at] !== char) return false;
    this.at++;
    return true;
  }

  /** `UID`, `BODY[HEADER.FIELDS (FROM)]<0>`: an atom, with a bracketed section and an origin. */
  itemName(): string {
    const from = this.at;
    while (this.at < this.text.length && !' ()[{"'.includes(this.text[this.at] as string)) this.at++;
    if (this.text[this.at] === '[') {
      const close = this.text.indexOf(']', this.at);
      if (close < 0) throw this.broken('an unclosed section');
      this.at = close + 1;
      if (this.text[this.at] === '<') {
        const end = this.text.indexOf('>', this.at);
        if (end < 0) throw this.broken('an unclosed origin');
        this.at = end + 1;
      }
    }
    if (this.at === from) throw this.broken('a missing data item name');
    return this.text.slice(from, this.at);
  }

  value(depth: number): FetchValue {
    const c = this.text[this.at];
    if (c === undefined) throw this.broken('a missing value');
    if (c === '(') {
      if (depth > 32) throw this.broken('lists nested too deep');
      this.at++;
      const list: FetchValue[] = [];
      for (;;) {
        this.spaces();
        if (this.take(')')) return list;
        list.push(this.value(depth + 1));
      }
    }
    if (c === '"') return this.quoted();
    if (c === '{' || (c === '~' && this.text[this.at + 1] === '{')) return this.literal();
    const from = this.at;
    // An atom, number or flag; `\Seen` and `$Label` too.
    while (this.at < this.text.length && !' ()"{'.includes(this.text[this.at] as string)) {
      if (this.text[this.at] === '[') {
        const close = this.text.indexOf(']', this.at);
        this.at = close < 0 ? this.text.length : close + 1;
      } else this.at++;
    }
    if (this.at === from) throw this.broken(`an unexpected "${c}"`);
    const atom = this.text.slice(from, this.at);
    return atom.toUpperCase() === 'NIL' ? null : atom;
  }

  private quoted(): string {
    let out = '';
    for (this.at++; this.at < this.text.length; this.at++) {
      const c = this.text[this.at] as string;
      if (c === '"') {
        this.at++;
        return out;
      }
      if (c === '\\') this.at++;
      out += this.text[this.at] ?? '';
    }
    throw this.broken('an unclosed quoted string');
  }

  private literal(): Buffer | typeof DROPPED {
    const end = this.text.indexOf('}\r\n', this.at);
    const literal = this.response.literals[this.nextLiteral++];
    if (end < 0 || literal === undefined) throw this.broken('a literal without its octets');
    this.at = end + 3;
    return literal;
  }

  private broken(what: string): ImapFramingError {
    return new ImapFramingError(`unreadable FETCH response: ${what} at offset ${this.at}`);
  }
}

/**
 * A mailbox name as an IMAP astring (RFC 3501 section 9): a quoted string, with `\` and `"`
 * escaped. The name is already in the form the server expects (modified UTF-7, or UTF-8 where
 * UTF8=ACCEPT is enabled); CR, LF and NUL can be in no mailbox name.
 */
export function quoted(name: string): string {
  if (/[\r\n\0]/.test(name)) throw new ImapFramingError('a mailbox name cannot contain CR, LF or NUL');
  return `"${name.replace(/["\\]/g, '\\$&')}"`;
}
