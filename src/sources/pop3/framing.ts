/**
 * POP3 response framing: bytes off the socket in, complete responses out. Pure, no I/O, no clock,
 * so it is tested by splitting responses at every byte offset.
 *
 * RFC 1939 section 3 knows two shapes of response:
 * - a single status line, `+OK text` or `-ERR text`, ended by CRLF;
 * - a multi-line response: a `+OK` status line, then lines ended by CRLF, then a line holding a
 *   single "." (so the data ends with CRLF "." CRLF). A data line that begins with "." is sent with
 *   one more "." in front ("byte-stuffed"), which the receiver removes.
 * A status line cannot say which shape follows; only the command that was sent can. The reader is
 * therefore told in advance what it should expect, one announcement per response in the order the
 * commands were written. With RFC 2449 PIPELINING (section 6.6) several commands are on the wire at
 * once and the server answers them in turn, so the same queue pairs each answer with its command.
 *
 * Bodies are never decoded: 8-bit mail stays byte for byte what the server sent. Only status lines
 * become strings.
 */

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const LF_DOT = Buffer.from('\n.', 'latin1');
const CR_ONLY = Buffer.from('\r', 'latin1');

/**
 * RFC 2449 section 4 caps a response line at 512 octets; real servers send longer greetings and
 * capability text, so the default is generous while still bounded.
 */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024;

export type ResponseShape = 'single' | 'multi';

/** What the next response will be, announced before the command that causes it is written. */
export interface Expectation {
  shape: ResponseShape;
  /**
   * Multi-line only: the largest payload (after un-stuffing) kept in memory. A bigger payload is
   * read to its end and thrown away, and its response comes back with `overLimit: true`, so the
   * session stays usable and memory stays bounded whatever the server sends.
   */
  maxBodyBytes?: number;
  /**
   * Multi-line only: the payload size known in advance (a RETR's size from LIST, RFC 1939 section
   * 5). The payload is then copied into one buffer of that size as it arrives, instead of kept as
   * slices of the socket's chunks and joined at the end, so a large message is never held twice. A
   * wrong hint costs only time: the buffer grows when the server sends more, and a payload much
   * shorter than its buffer is copied out.
   */
  sizeHint?: number;
  /**
   * Multi-line only: takes the payload piece by piece as it arrives (un-stuffed, in order, lines
   * split anywhere) instead of it being kept, so an answer read line by line (a UIDL of the whole
   * maildrop) is parsed while the server is still sending it. The response's body is then empty.
   * A piece is only valid during the call; the sink must not throw.
   */
  sink?: (piece: Buffer) => void;
}

/**
 * `ok` is +OK, `err` is -ERR, `continue` is the "+ " line a server sends during SASL exchanges
 * (RFC 5034 section 4).
 */
export type Pop3Status = 'ok' | 'err' | 'continue';

export interface Pop3Response {
  status: Pop3Status;
  /** The status line after the indicator and one space, decoded as UTF-8. */
  text: string;
  /**
   * The multi-line payload: exact bytes, un-stuffed, line endings as the server sent them (the last
   * line keeps its CRLF), the terminating ".\r\n" removed. Only for a multi-line expectation whose
   * status was +OK and whose payload fit in `maxBodyBytes`; empty when it went to a sink.
   */
  body: Buffer | undefined;
  /** True when the multi-line payload was larger than `maxBodyBytes` and was discarded. */
  overLimit: boolean;
}

export type FramingErrorReason = 'line-too-long' | 'bad-status-line' | 'unsolicited-data';

/**
 * The byte stream can no longer be trusted to line up with the commands sent. The session must be
 * dropped; the reader refuses any more input.
 */
export class FramingError extends Error {
  readonly reason: FramingErrorReason;
  constructor(reason: FramingErrorReason, message: string) {
    super(message);
    this.name = 'FramingError';
    this.reason = reason;
  }
}

export interface FramerOptions {
  /** Longest status line accepted, without its line ending. */
  maxLineBytes?: number;
}

/** Where the multi-line scanner stands relative to the start of a data line. */
type BodyState =
  | 'line-start' // the next byte begins a line
  | 'in-line' // inside a line: only "\n." matters
  | 'dot' // a line began with "."; the dot is held back
  | 'dot-cr'; // a line began with ".\r"; both are held back

interface Current {
  expectation: Expectation;
  /** Set once the status line of a multi-line response was read. */
  status: { status: Pop3Status; text: string } | undefined;
}

export class Pop3Framer {
  private readonly maxLineBytes: number;
  private readonly queue: Expectation[] = [];
  private current: Current | undefined;
  private failure: FramingError | undefined;

  // Status line under construction: the pieces seen so far, without the LF.
  private lineParts: Buffer[] = [];
  private lineBytes = 0;

  // Multi-line payload under construction.
  private payload: Payload = new Payload(undefined);
  private bodyState: BodyState = 'line-start';

  constructor(options: FramerOptions = {}) {
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  }

  /** Announces the shape of one more response, after those already announced. */
  expect(expectation: Expectation): void {
    this.throwIfFailed();
    assertByteCount('maxBodyBytes', expectation.maxBodyBytes);
    assertByteCount('sizeHint', expectation.sizeHint);
    this.queue.push(expectation);
  }

  /** How many announced responses have not been completed yet. */
  get outstanding(): number {
    return this.queue.length + (this.current === undefined ? 0 : 1);
  }

  /**
   * Feeds the bytes that just arrived and returns every response they complete, in order.
   * The chunk is kept by reference (no copy) until its response is returned: do not reuse it.
   * Throws FramingError, after which the reader is dead.
   */
  push(chunk: Buffer): Pop3Response[] {
    this.throwIfFailed();
    const done: Pop3Response[] = [];
    let pos = 0;
    try {
      while (pos < chunk.length) {
        if (this.current === undefined) this.current = this.nextExpectation();
        const current = this.current;
        const result = current.status === undefined ? this.readStatus(chunk, pos) : this.readBody(chunk, pos);
        pos = result.pos;
        if (result.response !== undefined) {
          done.push(result.response);
          this.current = undefined;
        }
      }
    } catch (err) {
      if (err instanceof FramingError) this.failure = err;
      throw err;
    }
    return done;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private nextExpectation(): Current {
    const expectation = this.queue.shift();
    // RFC 1939 has no unsolicited responses: bytes nobody asked for mean the stream is out of step
    // (or, right after STLS, someone injected plaintext; RFC 2595 section 4).
    if (expectation === undefined) {
      throw new FramingError('unsolicited-data', 'the server sent data that no command asked for');
    }
    return { expectation, status: undefined };
  }

  /** Reads (part of) a status line from `pos`; returns where it stopped and the response if done. */
  private readStatus(chunk: Buffer, pos: number): { pos: number; response: Pop3Response | undefined } {
    const lf = chunk.indexOf(LF, pos);
    const end = lf === -1 ? chunk.length : lf;
    if (end > pos) {
      this.lineParts.push(chunk.subarray(pos, end));
      this.lineBytes += end - pos;
    }
    // +1 leaves room for the CR of a CRLF that is not yet known to be one.
    if (this.lineBytes > this.maxLineBytes + 1) {
      throw new FramingError('line-too-long', `a response line is longer than ${this.maxLineBytes} bytes`);
    }
    if (lf === -1) return { pos: chunk.length, response: undefined };

    const line = this.takeLine();
    const parsed = parseStatusLine(line, this.maxLineBytes);
    const current = this.current;
    if (current === undefined) throw new Error('unreachable: no current expectation');
    if (current.expectation.shape === 'multi' && parsed.status === 'ok') {
      current.status = parsed;
      this.startBody();
      return { pos: lf + 1, response: undefined };
    }
    return { pos: lf + 1, response: { ...parsed, body: undefined, overLimit: false } };
  }

  private takeLine(): Buffer {
    const line = this.lineParts.length === 1 ? (this.lineParts[0] as Buffer) : Buffer.concat(this.lineParts, this.lineBytes);
    this.lineParts = [];
    this.lineBytes = 0;
    return line;
  }

  private startBody(): void {
    this.payload = new Payload(this.current?.expectation);
    this.bodyState = 'line-start';
  }

  /**
   * Scans multi-line data from `pos`. Runs of bytes between held-back dots are kept as slices of the
   * chunk; only "\n." (a dot at the start of a line) needs a closer look, so a large body costs one
   * native search per chunk plus one step per dot-led line.
   */
  private readBody(chunk: Buffer, pos: number): { pos: number; response: Pop3Response | undefined } {
    let runStart = pos;
    let i = pos;
    while (i < chunk.length) {
      switch (this.bodyState) {
        case 'line-start': {
          if (chunk[i] === DOT) {
            this.keep(chunk, runStart, i);
            this.bodyState = 'dot';
            i += 1;
            runStart = i;
          } else {
            this.bodyState = 'in-line';
          }
          break;
        }
        case 'in-line': {
          const hit = chunk.indexOf(LF_DOT, i);
          if (hit === -1) {
            // A line may end exactly at the chunk's end; the next chunk then starts a line.
            this.bodyState = chunk[chunk.length - 1] === LF ? 'line-start' : 'in-line';
            i = chunk.length;
          } else {
            this.keep(chunk, runStart, hit + 1);
            this.bodyState = 'dot';
            i = hit + 2;
            runStart = i;
          }
          break;
        }
        case 'dot': {
          const byte = chunk[i];
          if (byte === LF) return this.finishBody(i + 1); // ".\n": a tolerated bare-LF terminator
          if (byte === CR) {
            this.bodyState = 'dot-cr';
            i += 1;
            runStart = i;
          } else {
            // A stuffed line: the held-back dot is dropped, the rest of the line is data.
            this.bodyState = 'in-line';
            runStart = i;
          }
          break;
        }
        case 'dot-cr': {
          if (chunk[i] === LF) return this.finishBody(i + 1);
          // ".\r" not followed by LF is not the terminator: drop the dot, keep the CR.
          this.keep(CR_ONLY, 0, 1);
          this.bodyState = 'in-line';
          runStart = i;
          break;
        }
      }
    }
    if (this.bodyState === 'in-line' || this.bodyState === 'line-start') this.keep(chunk, runStart, chunk.length);
    return { pos: chunk.length, response: undefined };
  }

  /** Keeps `source[start, end)` as payload. */
  private keep(source: Buffer, start: number, end: number): void {
    if (end > start) this.payload.add(source, start, end);
  }

  private finishBody(pos: number): { pos: number; response: Pop3Response } {
    const current = this.current;
    if (current?.status === undefined) throw new Error('unreachable: body without a status line');
    const body = this.payload.take();
    const overLimit = body === undefined;
    this.payload = new Payload(undefined);
    return { pos, response: { ...current.status, body, overLimit } };
  }
}

/** A payload that outgrows its buffer grows it by at least this factor. */
const GROWTH = 1.25;

const EMPTY = Buffer.alloc(0);

/**
 * One multi-line payload as it arrives. Without a size hint, slices of the pushed chunks, joined
 * once at the end (no copy until then). With one, a single buffer of that size that each slice is
 * copied into, so the chunks can go at once and the payload exists once, not twice, at the end.
 * With a sink, each slice goes to it and nothing is kept. Over `limit` bytes, everything is
 * dropped and only counted: memory stays bounded while the scan goes on to the terminator.
 */
class Payload {
  private readonly limit: number | undefined;
  private readonly sink: ((piece: Buffer) => void) | undefined;
  private parts: Buffer[] = [];
  private buffer: Buffer | undefined;
  private bytes = 0;
  private over = false;

  constructor(expectation: Expectation | undefined) {
    this.limit = expectation?.maxBodyBytes;
    this.sink = expectation?.sink;
    const hint = expectation?.sizeHint;
    // A hint is a claim of the server's: never allocate beyond what would be kept anyway.
    if (hint !== undefined && this.sink === undefined) this.buffer = Buffer.allocUnsafe(Math.min(hint, this.limit ?? hint));
  }

  add(source: Buffer, start: number, end: number): void {
    const filled = this.bytes;
    this.bytes += end - start;
    if (this.over) return;
    if (this.limit !== undefined && this.bytes > this.limit) {
      this.over = true;
      this.parts = [];
      this.buffer = undefined;
      return;
    }
    if (this.sink !== undefined) {
      this.sink(source.subarray(start, end));
      return;
    }
    if (this.buffer === undefined) {
      this.parts.push(source.subarray(start, end));
      return;
    }
    if (this.bytes > this.buffer.length) this.grow(filled);
    source.copy(this.buffer, filled, start, end);
  }

  /** The payload, or undefined when it was over the limit. */
  take(): Buffer | undefined {
    if (this.over) return undefined;
    if (this.sink !== undefined) return EMPTY;
    if (this.buffer === undefined) return Buffer.concat(this.parts, this.bytes);
    const buffer = this.buffer;
    if (this.bytes === buffer.length) return buffer;
    // The server sent less than LIST said. A mostly empty buffer is not kept alive for a small
    // message; otherwise the unused tail (allocUnsafe: old memory) is cleared, not exposed.
    if (this.bytes < buffer.length / 2) return Buffer.from(buffer.subarray(0, this.bytes));
    return buffer.fill(0, this.bytes).subarray(0, this.bytes);
  }

  /** Room for `this.bytes`: at least a quarter more, so a long run of small overruns costs few copies. */
  private grow(filled: number): void {
    const old = this.buffer as Buffer;
    let size = Math.max(this.bytes, Math.ceil(old.length * GROWTH));
    if (this.limit !== undefined) size = Math.min(size, this.limit);
    const grown = Buffer.allocUnsafe(size);
    old.copy(grown, 0, 0, filled);
    this.buffer = grown;
  }
}

function assertByteCount(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
    throw new RangeError(`${name} must be a non-negative integer, not ${value}`);
  }
}

/**
 * Splits a status line into its indicator and text. RFC 1939 section 3 writes the indicators in
 * upper case; case is not insisted on, but nothing else is accepted.
 */
export function parseStatusLine(line: Buffer, maxLineBytes = DEFAULT_MAX_LINE_BYTES): { status: Pop3Status; text: string } {
  const end = line.length > 0 && line[line.length - 1] === CR ? line.length - 1 : line.length;
  if (end > maxLineBytes) {
    throw new FramingError('line-too-long', `a response line is longer than ${maxLineBytes} bytes`);
  }
  const head = line.subarray(0, Math.min(end, 4)).toString('latin1').toUpperCase();
  let indicator: number;
  let status: Pop3Status;
  if (head.startsWith('+OK')) {
    status = 'ok';
    indicator = 3;
  } else if (head === '-ERR') {
    status = 'err';
    indicator = 4;
  } else if (head === '+' || head.startsWith('+ ')) {
    status = 'continue';
    indicator = 1;
  } else {
    throw new FramingError('bad-status-line', `not a POP3 status line: ${printable(line.subarray(0, Math.min(end, 40)))}`);
  }
  const rest = line.subarray(indicator, end);
  const text = (rest[0] === 0x20 ? rest.subarray(1) : rest).toString('utf8');
  return { status, text };
}

/** A short, printable rendering of bytes for error messages. */
function printable(bytes: Buffer): string {
  return JSON.stringify(bytes.toString('latin1'));
}
