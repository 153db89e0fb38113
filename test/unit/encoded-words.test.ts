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
