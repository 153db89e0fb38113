import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { syntheticMessageId } from '../../src/parse/synthetic-id.js';
import { plainMessage } from '../fixtures/messages.js';

const expected = (text: string) => `${createHash('sha256').update(Buffer.from(text, 'latin1')).digest('hex').slice(0, 32)}@mailpoll.invalid`;

describe('syntheticMessageId', () => {
  it('is the first 32 hex digits of the sha256 of the LF-normalised bytes, at mailpoll.invalid, without brackets', () => {
    const id = syntheticMessageId(Buffer.from('Subject: no id\r\n\r\nbody\r\n'));
    expect(id).toBe(expected('Subject: no id\n\nbody\n'));
    expect(id).toMatch(/^[0-9a-f]{32}@mailpoll\.invalid$/);
  });

  it('hashes empty bytes too', () => {
    expect(syntheticMessageId(Buffer.alloc(0))).toBe('e3b0c44298fc1c149afbf4c8996fb924@mailpoll.invalid');
  });

  it('gives the same id for the same bytes, in another buffer', () => {
    const raw = plainMessage({ messageId: 'x@y' });
    expect(syntheticMessageId(Buffer.from(raw))).toBe(syntheticMessageId(raw));
  });

  it('gives the same id whether the server serves CRLF or bare LF', () => {
    const crlf = plainMessage({ messageId: 'x@y' });
    const lf = Buffer.from(crlf.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    expect(lf.equals(crlf)).toBe(false);
    expect(syntheticMessageId(lf)).toBe(syntheticMessageId(crlf));
  });

  it('gives another id when one byte differs', () => {
    expect(syntheticMessageId(Buffer.from('Subject: a\r\n\r\nbody'))).not.toBe(syntheticMessageId(Buffer.from('Subject: b\r\n\r\nbody')));
  });

  it('normalises only CRLF: a lone CR is a different message', () => {
    expect(syntheticMessageId(Buffer.from('a\rb'))).not.toBe(syntheticMessageId(Buffer.from('a\nb')));
    expect(syntheticMessageId(Buffer.from('a\rb'))).toBe(expected('a\rb'));
  });

  it('hashes 8-bit bytes as they are', () => {
    const latin1 = Buffer.from([0x43, 0x61, 0x66, 0xe9, 0x0d, 0x0a]);
    expect(syntheticMessageId(latin1)).toBe(expected('Caf\u00e9\n'));
    expect(syntheticMessageId(latin1)).not.toBe(syntheticMessageId(Buffer.from('Café\r\n', 'utf8')));
  });
});
