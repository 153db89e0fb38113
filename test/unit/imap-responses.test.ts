import { describe, expect, it } from 'vitest';
import { byeText, DROPPED, fetchItems, ImapFramingError, quoted, ResponseFramer, taggedStatus, type ImapResponse } from '../../src/sources/imap-responses.js';

/** Feeds `wire` to a framer in pieces of `step` bytes and collects what comes out. */
function frame(wire: Buffer, step: number, keep: (size: number) => boolean = () => true): ImapResponse[] {
  const framer = new ResponseFramer(keep);
  const out: ImapResponse[] = [];
  for (let at = 0; at < wire.length; at += step) out.push(...framer.push(wire.subarray(at, at + step)));
  expect(framer.literalPending).toBe(0);
  return out;
}

const MESSAGE = Buffer.from('Subject: hi\r\n\r\nA body with a ) and a {5}\r\nand a line * 3 FETCH (UID 9)\r\n');

describe('ResponseFramer', () => {
  const wire = Buffer.concat([
    Buffer.from(`* 1 FETCH (UID 7 BODY[] {${MESSAGE.length}}\r\n`),
    MESSAGE,
    Buffer.from(')\r\n* 2 EXISTS\r\n* 2 FETCH (FLAGS (\\Seen) UID 8)\r\n'),
    Buffer.from('* 3 FETCH (BODY[] {0}\r\n UID 9)\r\nM1 OK [READ-ONLY] done\r\n'),
  ]);

  it('gives the same responses however the stream is cut, literals byte for byte', () => {
    const whole = frame(wire, wire.length);
    expect(whole.map((r) => r.text)).toEqual([
      `* 1 FETCH (UID 7 BODY[] {${MESSAGE.length}}\r\n)`,
      '* 2 EXISTS',
      '* 2 FETCH (FLAGS (\\Seen) UID 8)',
      '* 3 FETCH (BODY[] {0}\r\n UID 9)',
      'M1 OK [READ-ONLY] done',
    ]);
    expect(whole[0]?.literals).toEqual([MESSAGE]);
    expect(whole[3]?.literals).toEqual([Buffer.alloc(0)]);
    for (const step of [1, 2, 3, 7, 16, 61]) expect(frame(wire, step), `pieces of ${step}`).toEqual(whole);
  });

  it('skips a literal it is told not to keep, and frames what follows it', () => {
    const out = frame(wire, 5, (size) => size < 10);
    expect(out[0]?.literals).toEqual([DROPPED]);
    expect(out[3]?.literals).toEqual([Buffer.alloc(0)]);
    expect(out.at(-1)?.text).toBe('M1 OK [READ-ONLY] done');
  });

  it('takes a bare LF as a line end and a ~{n} literal (RFC 3516) as a literal', () => {
    const out = frame(Buffer.from('* 4 FETCH (BINARY[] ~{3}\r\nabc UID 2)\nM2 OK\n'), 4);
    expect(out.map((r) => r.text)).toEqual(['* 4 FETCH (BINARY[] ~{3}\r\n UID 2)', 'M2 OK']);
    expect(out[0]?.literals).toEqual([Buffer.from('abc')]);
  });

  it('refuses a line that never ends', () => {
    const framer = new ResponseFramer(() => true, 1000);
    expect(() => {
      for (let i = 0; i < 20; i++) framer.push(Buffer.alloc(100, 0x41));
    }).toThrow(ImapFramingError);
  });
});

describe('fetchItems', () => {
  const response = (text: string, ...literals: Buffer[]): ImapResponse => ({ text, literals });

  it('reads UID and the section whatever their order, and passes over the other items', () => {
    const items = fetchItems(response('* 12 FETCH (MODSEQ (42) BODY[] {3}\r\n UID 99 FLAGS (\\Seen $Label) X-GM-LABELS ("a b" {2}\r\n))', Buffer.from('raw'), Buffer.from('zz')));
    expect(items?.get('UID')).toBe('99');
    expect(items?.get('BODY[]')).toEqual(Buffer.from('raw'));
    expect(items?.get('FLAGS')).toEqual(['\\Seen', '$Label']);
    expect(items?.get('X-GM-LABELS')).toEqual(['a b', Buffer.from('zz')]);
    expect(items?.get('MODSEQ')).toEqual(['42']);
  });

  it('keeps section names whole: HEADER.FIELDS with its list, a partial origin', () => {
    const items = fetchItems(response('* 1 fetch (uid 5 BODY[HEADER.FIELDS (FROM TO)] {1}\r\n BODY[]<0> "quoted \\"x\\"" BODY[TEXT] NIL)', Buffer.from('h')));
    expect([...(items?.keys() ?? [])]).toEqual(['UID', 'BODY[HEADER.FIELDS (FROM TO)]', 'BODY[]<0>', 'BODY[TEXT]']);
    expect(items?.get('BODY[]<0>')).toBe('quoted "x"');
    expect(items?.get('BODY[TEXT]')).toBeNull();
  });

  it('is undefined for other responses and throws on a FETCH it cannot read', () => {
    expect(fetchItems(response('* 3 EXISTS'))).toBeUndefined();
    expect(fetchItems(response('* OK [UIDNEXT 4] next'))).toBeUndefined();
    expect(() => fetchItems(response('* 1 FETCH (UID 5 BODY[] {3}\r\n)'))).toThrow(ImapFramingError);
    expect(() => fetchItems(response('* 1 FETCH (UID 5 BODY[] "unclosed)'))).toThrow(ImapFramingError);
    expect(() => fetchItems(response('* 1 FETCH (UID'))).toThrow(ImapFramingError);
  });
});

describe('status lines', () => {
  it('reads tagged OK, NO and BAD with their code', () => {
    expect(taggedStatus('M3 NO [ALREADYEXISTS] Mailbox exists')).toEqual({ tag: 'M3', status: 'NO', code: 'ALREADYEXISTS', text: 'Mailbox exists' });
    expect(taggedStatus('M4 ok Done')).toEqual({ tag: 'M4', status: 'OK', code: undefined, text: 'Done' });
    expect(taggedStatus('M5 BAD')).toEqual({ tag: 'M5', status: 'BAD', code: undefined, text: '' });
    expect(taggedStatus('* OK still here')).toBeUndefined();
    expect(byeText('* BYE Logging out')).toBe('Logging out');
    expect(byeText('* OK fine')).toBeUndefined();
  });

  it('quotes mailbox names and refuses what no name can hold', () => {
    expect(quoted('Archive/2026 "done" \\ x')).toBe('"Archive/2026 \\"done\\" \\\\ x"');
    expect(() => quoted('a\r\nb')).toThrow(ImapFramingError);
  });
});
