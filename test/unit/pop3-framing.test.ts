import { describe, expect, it } from 'vitest';
import { FramingError, Pop3Framer, type Expectation, type Pop3Response } from '../../src/sources/pop3/framing.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const single: Expectation = { shape: 'single' };
const multi = (maxBodyBytes?: number): Expectation => (maxBodyBytes === undefined ? { shape: 'multi' } : { shape: 'multi', maxBodyBytes });

function framerFor(...expectations: Expectation[]): Pop3Framer {
  const f = new Pop3Framer();
  for (const e of expectations) f.expect(e);
  return f;
}

/** Feeds the chunks in order and returns every response completed. */
function feed(f: Pop3Framer, chunks: readonly Buffer[]): Pop3Response[] {
  const out: Pop3Response[] = [];
  for (const c of chunks) out.push(...f.push(c));
  return out;
}

function splitAt(buf: Buffer, ...points: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(Buffer.from(buf.subarray(prev, p)));
    prev = p;
  }
  out.push(Buffer.from(buf.subarray(prev)));
  return out;
}

/** RFC 1939 section 3 byte-stuffing plus terminator, as a server would send a message. */
function onTheWire(message: Buffer, status = '+OK message follows'): Buffer {
  const lines: Buffer[] = [bytes(`${status}\r\n`)];
  let start = 0;
  while (start < message.length) {
    const lf = message.indexOf(0x0a, start);
    const end = lf === -1 ? message.length : lf + 1;
    if (message[start] === 0x2e) lines.push(bytes('.'));
    lines.push(message.subarray(start, end));
    start = end;
  }
  lines.push(bytes('.\r\n'));
  return Buffer.concat(lines);
}

/** A deterministic PRNG (mulberry32), so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Dot-stuffed lines at the start, in the middle and at the end, a line that is only ".",
// a line that is "..", 8-bit bytes and a bare CR inside a line.
const MESSAGE = Buffer.concat([
  bytes('.starts with a dot\r\n'),
  bytes('Subject: caf\xe9 \xff\x80\r\n'),
  bytes('\r\n'),
  bytes('.\r\n'),
  bytes('..\r\n'),
  bytes('a.b\r\n'),
  bytes('bare\rcr\r\n'),
  bytes('...three\r\n'),
]);
const WIRE = onTheWire(MESSAGE);

describe('Pop3Framer single-line responses', () => {
  it('reads +OK and -ERR with their text', () => {
    const f = framerFor(single, single);
    const [ok, err] = feed(f, [bytes('+OK POP3 ready <1.2@x>\r\n-ERR [AUTH] bad password\r\n')]);
    expect(ok).toEqual({ status: 'ok', text: 'POP3 ready <1.2@x>', body: undefined, overLimit: false });
    expect(err).toEqual({ status: 'err', text: '[AUTH] bad password', body: undefined, overLimit: false });
  });

  it('tolerates a bare LF line ending', () => {
    const f = framerFor(single, single);
    const out = feed(f, [bytes('+OK one\n+OK'), bytes(' two\n')]);
    expect(out.map((r) => r.text)).toEqual(['one', 'two']);
  });

  it('reads a status with no text, and the SASL "+ " continuation', () => {
    const f = framerFor(single, single, single);
    const out = feed(f, [bytes('+OK\r\n+ \r\n+\r\n')]);
    expect(out.map((r) => [r.status, r.text])).toEqual([['ok', ''], ['continue', ''], ['continue', '']]);
  });

  it('waits for the line end when a status line is split between CR and LF', () => {
    const f = framerFor(single);
    expect(f.push(bytes('+OK hi\r'))).toEqual([]);
    expect(f.push(bytes('\n'))).toEqual([{ status: 'ok', text: 'hi', body: undefined, overLimit: false }]);
  });

  it('refuses a line that is not a status line, then refuses all further input', () => {
    const f = framerFor(single, single);
    expect(() => f.push(bytes('HELLO\r\n'))).toThrow(FramingError);
    expect(() => f.push(bytes('+OK\r\n'))).toThrow(/not a POP3 status line/);
  });

  it('refuses a status line over the line limit, even before its end arrives', () => {
    const f = new Pop3Framer({ maxLineBytes: 16 });
    f.expect(single);
    expect(f.push(bytes('+OK 123456789'))).toEqual([]);
    let caught: unknown;
    try {
      f.push(bytes('0123456789'));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FramingError);
    expect((caught as FramingError).reason).toBe('line-too-long');
  });

  it('accepts a status line of exactly the line limit, CRLF not counted', () => {
    const f = new Pop3Framer({ maxLineBytes: 16 });
    f.expect(single);
    f.expect(single);
    expect(f.push(bytes('+OK 123456789012\r\n'))[0]?.text).toBe('123456789012');
    expect(() => f.push(bytes('+OK 1234567890123\r\n'))).toThrow(FramingError);
  });

  it('refuses bytes that no command asked for', () => {
    const f = framerFor(single);
    let caught: unknown;
    try {
      f.push(bytes('+OK Begin TLS\r\nCAPA\r\n'));
    } catch (err) {
      caught = err;
    }
    expect((caught as FramingError).reason).toBe('unsolicited-data');
  });

  it('rejects a negative or fractional body limit', () => {
    const f = new Pop3Framer();
    expect(() => f.expect(multi(-1))).toThrow(RangeError);
    expect(() => f.expect(multi(1.5))).toThrow(RangeError);
  });
});

describe('Pop3Framer multi-line responses', () => {
  it('returns the un-stuffed bytes with CRLF kept and the terminator removed', () => {
    const [r] = feed(framerFor(multi()), [WIRE]);
    expect(r?.status).toBe('ok');
    expect(r?.text).toBe('message follows');
    expect(r?.overLimit).toBe(false);
    expect(r?.body?.equals(MESSAGE)).toBe(true);
    // Spelled out once, so the test does not only agree with its own stuffing helper.
    expect(r?.body?.toString('latin1')).toBe(
      '.starts with a dot\r\nSubject: caf\xe9 \xff\x80\r\n\r\n.\r\n..\r\na.b\r\nbare\rcr\r\n...three\r\n',
    );
  });

  it('unstuffs exactly one dot from a wire line ".." and "..."', () => {
    const [r] = feed(framerFor(multi()), [bytes('+OK\r\n..\r\n...\r\n.\r\n')]);
    expect(r?.body?.toString('latin1')).toBe('.\r\n..\r\n');
  });

  it('gives the same bytes for a split at every byte offset', () => {
    for (let i = 0; i <= WIRE.length; i += 1) {
      const out = feed(framerFor(multi()), splitAt(WIRE, i));
      expect(out, `split at ${i}`).toHaveLength(1);
      expect(out[0]?.body?.equals(MESSAGE), `split at ${i}`).toBe(true);
    }
  });

  it('gives the same bytes for a three-way split at every pair of offsets', () => {
    for (let i = 0; i <= WIRE.length; i += 1) {
      for (let j = i; j <= WIRE.length; j += 1) {
        const out = feed(framerFor(multi()), splitAt(WIRE, i, j));
        if (out.length !== 1 || out[0]?.body?.equals(MESSAGE) !== true) {
          throw new Error(`split at ${i},${j}: got ${JSON.stringify(out[0]?.body?.toString('latin1'))}`);
        }
      }
    }
  });

  it('gives the same bytes when fed one byte at a time', () => {
    const f = framerFor(multi());
    const out: Pop3Response[] = [];
    for (const b of WIRE) out.push(...f.push(Buffer.from([b])));
    expect(out).toHaveLength(1);
    expect(out[0]?.body?.equals(MESSAGE)).toBe(true);
  });

  it('finds the end marker in chunks "\\r", "\\n", ".", "\\r", "\\n"', () => {
    const f = framerFor(multi());
    const out = feed(f, [bytes('+OK\r\nx'), bytes('\r'), bytes('\n'), bytes('.'), bytes('\r'), bytes('\n')]);
    expect(out).toHaveLength(1);
    expect(out[0]?.body?.toString('latin1')).toBe('x\r\n');
  });

  it('does not end early on "\\r\\n." followed by more text', () => {
    const f = framerFor(multi());
    expect(f.push(bytes('+OK\r\na\r\n.'))).toEqual([]);
    expect(f.push(bytes('.b\r\n'))).toEqual([]);
    const out = f.push(bytes('.\r\n'));
    expect(out[0]?.body?.toString('latin1')).toBe('a\r\n.b\r\n');
  });

  it('keeps every byte value 0x00-0xFF exactly', () => {
    const all = Buffer.alloc(256);
    for (let b = 0; b < 256; b += 1) all[b] = b;
    // Lines of raw bytes without CR/LF, each ended by CRLF, as RFC 5322 transport would carry them.
    const noEol = Buffer.from([...all].filter((b) => b !== 0x0a && b !== 0x0d));
    const message = Buffer.concat([noEol, bytes('\r\n'), Buffer.from(noEol).reverse(), bytes('\r\n')]);
    for (let i = 0; i <= 40; i += 1) {
      const out = feed(framerFor(multi()), splitAt(onTheWire(message), i * 13));
      expect(out[0]?.body?.equals(message)).toBe(true);
    }
    const out = feed(framerFor(multi()), [onTheWire(message)]);
    expect(out[0]?.body?.subarray(0, 3)).toEqual(Buffer.from([0x00, 0x01, 0x02]));
    expect(out[0]?.body?.includes(Buffer.from([0xfe, 0xff, 0x0d, 0x0a, 0xff, 0xfe]))).toBe(true);
  });

  it('returns an empty body for an empty message', () => {
    const [r] = feed(framerFor(multi()), [bytes('+OK 0 octets\r\n.\r\n')]);
    expect(r?.body).toEqual(Buffer.alloc(0));
    expect(r?.overLimit).toBe(false);
  });

  it('tolerates bare LF line endings and a bare-LF terminator, keeping them as sent', () => {
    const [r] = feed(framerFor(multi()), [bytes('+OK\nline one\n..dot\n.\n')]);
    expect(r?.body?.toString('latin1')).toBe('line one\n.dot\n');
  });

  it('drops the stuffing dot but keeps a CR that is not followed by LF', () => {
    const [r] = feed(framerFor(multi()), [bytes('+OK\r\n.'), bytes('\r'), bytes('x\r\n.\r\n')]);
    expect(r?.body?.toString('latin1')).toBe('\rx\r\n');
  });

  it('reads an -ERR answer to a multi-line command as a single line', () => {
    const out = feed(framerFor(multi(), single), [bytes('-ERR no such message\r\n+OK\r\n')]);
    expect(out.map((r) => [r.status, r.text, r.body])).toEqual([
      ['err', 'no such message', undefined],
      ['ok', '', undefined],
    ]);
  });

  it('separates several responses that arrive in one chunk', () => {
    const f = framerFor(single, multi(), single, multi(), single);
    const chunk = bytes('+OK hello\r\n+OK\r\nUIDL\r\nSTLS\r\n.\r\n+OK 2 300\r\n+OK\r\n1 abc\r\n2 def\r\n.\r\n+OK bye\r\n');
    const out = feed(f, [chunk]);
    expect(out.map((r) => r.text)).toEqual(['hello', '', '2 300', '', 'bye']);
    expect(out[1]?.body?.toString('latin1')).toBe('UIDL\r\nSTLS\r\n');
    expect(out[3]?.body?.toString('latin1')).toBe('1 abc\r\n2 def\r\n');
    expect(f.outstanding).toBe(0);
  });

  it('discards a payload over the limit, flags it, and stays in step for the next response', () => {
    const f = framerFor(multi(10), single);
    const out = feed(f, splitAt(bytes('+OK\r\n0123456789\r\n..x\r\n.\r\n+OK next\r\n'), 7, 20));
    expect(out[0]).toEqual({ status: 'ok', text: '', body: undefined, overLimit: true });
    expect(out[1]?.text).toBe('next');
  });

  it('keeps a payload of exactly the limit, counted after un-stuffing', () => {
    // ".." on the wire is 3 bytes with CRLF but 3 payload bytes ".\r\n": 5 + 3 = 8.
    const [r] = feed(framerFor(multi(8)), [bytes('+OK\r\nabc\r\n..\r\n.\r\n')]);
    expect(r?.overLimit).toBe(false);
    expect(r?.body?.toString('latin1')).toBe('abc\r\n.\r\n');
    const [over] = feed(framerFor(multi(7)), [bytes('+OK\r\nabc\r\n..\r\n.\r\n')]);
    expect(over?.overLimit).toBe(true);
  });

  it('round-trips random CRLF messages under random chunking (seeded)', () => {
    const alphabet = [0x2e, 0x2e, 0x2e, 0x0d, 0x61, 0x20, 0xff, 0x80, 0x00, 0xe9];
    for (let seed = 1; seed <= 300; seed += 1) {
      const rnd = prng(seed);
      const parts: number[] = [];
      const lines = Math.floor(rnd() * 8);
      for (let l = 0; l < lines; l += 1) {
        const len = Math.floor(rnd() * 6);
        for (let k = 0; k < len; k += 1) {
          // No LF in the alphabet: a line's bytes never end the line early.
          parts.push(alphabet[Math.floor(rnd() * alphabet.length)] ?? 0x61);
        }
        parts.push(0x0d, 0x0a);
      }
      const message = Buffer.from(parts);
      const wire = onTheWire(message);
      const chunks: Buffer[] = [];
      for (let pos = 0; pos < wire.length;) {
        const n = 1 + Math.floor(rnd() * 7);
        chunks.push(Buffer.from(wire.subarray(pos, pos + n)));
        pos += n;
      }
      const out = feed(framerFor(multi()), chunks);
      if (out.length !== 1 || out[0]?.body?.equals(message) !== true) {
        throw new Error(`seed ${seed}: expected ${message.toString('hex')}, got ${out[0]?.body?.toString('hex')}`);
      }
    }
  });

  it('handles a multi-megabyte message in socket-sized chunks quickly and exactly', () => {
    const line = bytes(`${'x'.repeat(70)}\xe9\r\n`);
    const dotLine = bytes('.dotted line\r\n');
    const lines: Buffer[] = [];
    for (let i = 0; i < 80_000; i += 1) lines.push(i % 100 === 0 ? dotLine : line); // ~5.7 MB
    const message = Buffer.concat(lines);
    const wire = onTheWire(message);
    const f = framerFor(multi(64 * 1024 * 1024));
    const started = performance.now();
    const out: Pop3Response[] = [];
    for (let pos = 0; pos < wire.length; pos += 65_536) out.push(...f.push(wire.subarray(pos, pos + 65_536)));
    const elapsed = performance.now() - started;
    expect(out).toHaveLength(1);
    expect(out[0]?.body?.equals(message)).toBe(true);
    expect(elapsed).toBeLessThan(1_000);
  });
});

// ---- pipelined answers (RFC 2449 section 6.6) --------------------------------------------------

const hinted = (sizeHint: number, maxBodyBytes?: number): Expectation =>
  (maxBodyBytes === undefined ? { shape: 'multi', sizeHint } : { shape: 'multi', maxBodyBytes, sizeHint });

// What one burst of pipelined RETRs and DELEs brings back: answers back to back, a dot-stuffed
// message, a refused RETR, a DELE, an empty message and a message whose last line is "..".
const SECOND = bytes('Subject: two\r\n\r\n..\r\n.x\r\n');
const PIPELINED_WIRE = Buffer.concat([
  onTheWire(MESSAGE),
  bytes('-ERR no such message\r\n'),
  onTheWire(SECOND, '+OK 2nd'),
  bytes('+OK message 1 deleted\r\n'),
  onTheWire(Buffer.alloc(0), '+OK 0 octets'),
  onTheWire(bytes('..\r\n')),
]);

/** The answers PIPELINED_WIRE must come to, whatever the chunking. */
function expectPipelined(out: readonly Pop3Response[], where: string): void {
  const got = out.map((r) => [r.status, r.text, r.body?.toString('latin1'), r.overLimit]);
  const want = [
    ['ok', 'message follows', MESSAGE.toString('latin1'), false],
    ['err', 'no such message', undefined, false],
    ['ok', '2nd', SECOND.toString('latin1'), false],
    ['ok', 'message 1 deleted', undefined, false],
    ['ok', '0 octets', '', false],
    ['ok', 'message follows', '..\r\n', false],
  ];
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${where}: got ${JSON.stringify(got)}`);
}

/** The expectations for PIPELINED_WIRE; the RETRs with the given size hints (undefined: none). */
function pipelinedFramer(hints: readonly (number | undefined)[] = []): Pop3Framer {
  const retr = (i: number): Expectation => {
    const hint = hints[i];
    return hint === undefined ? multi(1024) : hinted(hint, 1024);
  };
  return framerFor(retr(0), retr(1), retr(2), single, retr(3), retr(4));
}

describe('Pop3Framer pipelined responses', () => {
  it('pairs back-to-back answers with their commands in order', () => {
    const f = pipelinedFramer();
    expect(f.outstanding).toBe(6);
    expectPipelined(feed(f, [PIPELINED_WIRE]), 'one chunk');
    expect(f.outstanding).toBe(0);
  });

  it('gives the same answers for a split at every byte offset', () => {
    for (let i = 0; i <= PIPELINED_WIRE.length; i += 1) {
      expectPipelined(feed(pipelinedFramer(), splitAt(PIPELINED_WIRE, i)), `split at ${i}`);
    }
  });

  it('gives the same answers for a three-way split at every pair of offsets', () => {
    for (let i = 0; i <= PIPELINED_WIRE.length; i += 1) {
      for (let j = i; j <= PIPELINED_WIRE.length; j += 3) {
        expectPipelined(feed(pipelinedFramer(), splitAt(PIPELINED_WIRE, i, j)), `split at ${i},${j}`);
      }
    }
  });

  it('gives the same answers with exact, short and long size hints, at every byte offset', () => {
    const exact = [MESSAGE.length, undefined, SECOND.length, 0, 4];
    const wrong = [1, undefined, SECOND.length + 500, 7, 0];
    for (const hints of [exact, wrong]) {
      for (let i = 0; i <= PIPELINED_WIRE.length; i += 1) {
        expectPipelined(feed(pipelinedFramer(hints), splitAt(PIPELINED_WIRE, i)), `hints ${JSON.stringify(hints)}, split at ${i}`);
      }
      const f = pipelinedFramer(hints);
      const out: Pop3Response[] = [];
      for (const b of PIPELINED_WIRE) out.push(...f.push(Buffer.from([b])));
      expectPipelined(out, `hints ${JSON.stringify(hints)}, byte by byte`);
    }
  });

  it('marks only the over-limit answer and stays in step for the ones after it', () => {
    const f = framerFor(multi(10), hinted(5, 10), single, multi());
    const wire = Buffer.concat([onTheWire(bytes('0123456789\r\n')), onTheWire(bytes('.a\r\n.b\r\n..c\r\n')), bytes('+OK\r\n'), onTheWire(bytes('ok\r\n'))]);
    for (let i = 0; i <= wire.length; i += 1) {
      const g = framerFor(multi(10), hinted(5, 10), single, multi());
      const out = feed(g, splitAt(wire, i));
      expect(out.map((r) => [r.overLimit, r.body?.toString('latin1')]), `split at ${i}`).toEqual([
        [true, undefined],
        [true, undefined],
        [false, undefined],
        [false, 'ok\r\n'],
      ]);
    }
    expect(feed(f, [wire])).toHaveLength(4);
  });
});

describe('Pop3Framer size hints', () => {
  it('copies the payload out of the chunks as they arrive, so a chunk is not kept', () => {
    const f = framerFor(hinted(MESSAGE.length));
    const out: Pop3Response[] = [];
    // The status line whole in the first chunk; afterwards every chunk is overwritten once pushed.
    for (const chunk of [WIRE.subarray(0, 21), ...splitAt(WIRE.subarray(21), 3, 17, 40)].map((c) => Buffer.from(c))) {
      out.push(...f.push(chunk));
      chunk.fill(0x21);
    }
    expect(out[0]?.body?.equals(MESSAGE)).toBe(true);
    expect(out[0]?.body?.byteLength).toBe(MESSAGE.length);
  });

  it('grows a hint that was too small, and trims one that was too large', () => {
    for (const hint of [0, 1, MESSAGE.length - 1, MESSAGE.length + 1, MESSAGE.length * 3]) {
      for (let i = 0; i <= WIRE.length; i += 1) {
        const [r] = feed(framerFor(hinted(hint)), splitAt(WIRE, i));
        if (r?.body?.equals(MESSAGE) !== true) throw new Error(`hint ${hint}, split at ${i}: ${JSON.stringify(r?.body?.toString('latin1'))}`);
      }
    }
  });

  it('clears the unused tail of a hinted buffer instead of exposing old memory', () => {
    const [r] = feed(framerFor(hinted(MESSAGE.length + 8)), [WIRE]);
    const body = r?.body as Buffer;
    expect(body.equals(MESSAGE)).toBe(true);
    const whole = Buffer.from(body.buffer, body.byteOffset, MESSAGE.length + 8);
    expect([...whole.subarray(MESSAGE.length)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('never allocates more than the body limit for a hint over it', () => {
    const [r] = feed(framerFor(hinted(1_000_000_000, MESSAGE.length)), [WIRE]);
    expect(r?.body?.equals(MESSAGE)).toBe(true);
    expect(r?.body?.buffer.byteLength).toBeLessThanOrEqual(MESSAGE.length + 8192);
  });

  it('keeps a large message exact with a hint, in socket-sized chunks', () => {
    const line = bytes(`${'y'.repeat(75)}\r\n`);
    const lines: Buffer[] = [];
    for (let i = 0; i < 40_000; i += 1) lines.push(i % 97 === 0 ? bytes('.dot\r\n') : line); // ~3 MB
    const message = Buffer.concat(lines);
    const wire = onTheWire(message);
    const f = framerFor(hinted(message.length, 64 * 1024 * 1024));
    const out: Pop3Response[] = [];
    for (let pos = 0; pos < wire.length; pos += 16_384) {
      const chunk = Buffer.from(wire.subarray(pos, pos + 16_384));
      out.push(...f.push(chunk));
      chunk.fill(0); // not referenced any more: the bytes were copied into the message's buffer
    }
    expect(out).toHaveLength(1);
    expect(out[0]?.body?.equals(message)).toBe(true);
    // The message is the whole of one allocation of the hinted size.
    expect(out[0]?.body?.byteLength).toBe(out[0]?.body?.buffer.byteLength);
  });

  it('rejects a negative or fractional size hint', () => {
    const f = new Pop3Framer();
    expect(() => f.expect(hinted(-1))).toThrow(RangeError);
    expect(() => f.expect(hinted(2.5))).toThrow(RangeError);
  });
});

describe('Pop3Framer sinks', () => {
  /** A framer whose first answer goes to a sink; returns the answers and what the sink got. */
  function sunk(chunks: readonly Buffer[], maxBodyBytes?: number): { out: Pop3Response[]; got: Buffer } {
    const pieces: Buffer[] = [];
    const sink = (piece: Buffer) => pieces.push(Buffer.from(piece));
    const f = framerFor(maxBodyBytes === undefined ? { shape: 'multi', sink } : { shape: 'multi', sink, maxBodyBytes }, single);
    return { out: feed(f, chunks), got: Buffer.concat(pieces) };
  }
  const wire = Buffer.concat([WIRE, bytes('+OK next\r\n')]);

  it('hands the payload over piece by piece, exactly, for a split at every byte offset', () => {
    for (let i = 0; i <= wire.length; i += 1) {
      const { out, got } = sunk(splitAt(wire, i));
      if (!got.equals(MESSAGE) || out.length !== 2 || out[0]?.body?.length !== 0 || out[1]?.text !== 'next') {
        throw new Error(`split at ${i}: ${JSON.stringify(got.toString('latin1'))}`);
      }
    }
  });

  it('stops feeding the sink past the limit and flags the answer, staying in step', () => {
    const { out, got } = sunk([wire], 20);
    expect(got.length).toBeLessThanOrEqual(20);
    expect(out.map((r) => [r.overLimit, r.text])).toEqual([[true, 'message follows'], [false, 'next']]);
  });
});
