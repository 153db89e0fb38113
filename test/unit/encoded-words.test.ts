import { describe, expect, it } from 'vitest';
import { decodeEncodedWords, decodeUtf7, needsOwnDecoding } from '../../src/parse/encoded-words.js';
import { parseMessage } from '../../src/parse/parse-message.js';

describe('encoded-words mailparser gets wrong', () => {
  it('decodes raw 8-bit bytes inside a Q encoded-word in the word charset', async () => {
    const raw = Buffer.concat([Buffer.from('Subject: =?iso-8859-1?Q?Die_Hasen_und_die_Fr'), Buffer.from([0xf6]), Buffer.from('sche?=\r\n\r\nbody\r\n')]);
    expect(needsOwnDecoding(raw.toString('latin1'))).toBe(true);
    expect((await parseMessage(raw)).subject).toBe('Die Hasen und die Frösche');
  });

  it('decodes UTF-7 encoded-words (RFC 2152)', async () => {
    expect(decodeUtf7('Fr+APY-sche 1+-1')).toBe('Frösche 1+1');
    const raw = Buffer.from('Subject: =?utf-7?Q?Die_Hasen_und_die_Fr+APY-sche?=\r\n\r\nbody\r\n');
    expect((await parseMessage(raw)).subject).toBe('Die Hasen und die Frösche');
  });

  it('leaves ordinary encoded-words to mailparser, and joins adjacent words', () => {
    expect(needsOwnDecoding('=?UTF-8?B?R3LDvMOfZQ==?=')).toBe(false);
    expect(decodeEncodedWords('=?UTF-8?Q?a?= =?UTF-8?Q?b?= c')).toBe('ab c');
    expect(decodeEncodedWords('=?x-unknown?Q?caf=E9?=')).toBe('café');
  });
});

describe('attachments', () => {
  it('keeps a forwarded message as a .eml attachment and winmail.dat as it is', async () => {
    const raw = Buffer.from([
      'From: a@b.c', 'Subject: fwd', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=x', '',
      '--x', 'Content-Type: text/plain', '', 'see below', '--x', 'Content-Type: message/rfc822', '',
      'From: c@d.e', 'Subject: Quarterly numbers', '', 'inner body', '--x',
      'Content-Type: application/ms-tnef; name="winmail.dat"', 'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="winmail.dat"', '', 'eJ8+IgAAAQaQCAAEAAAAAAABAAEAAQeQBgAIAAAA5AQAAAAAAADoAAENgAQAAgAAAAIAAgABBJAGAAg=', '--x--', '',
    ].join('\r\n'));
    const { attachments } = await parseMessage(raw);
    expect(attachments.map((a) => [a.filename, a.contentType])).toEqual([
      ['Quarterly numbers.eml', 'message/rfc822'],
      ['winmail.dat', 'application/ms-tnef'],
    ]);
    expect(attachments[0]?.content.toString()).toContain('inner body');
  });
});
