import { describe, expect, it } from 'vitest';
import { BenchMailGenerator } from '../../scripts/bench-mail.js';
import { fastParse } from '../../src/parse/mime-fast.js';
import { mailparser, toParsed } from '../../src/parse/parse-message.js';
import { standardMix } from '../fixtures/messages.js';
import { expectSameAsMailparser } from '../support/same-as-mailparser.js';

const CRLF = '\r\n';
const mail = (...lines: string[]) => Buffer.from(lines.join(CRLF), 'latin1');
const HEAD = ['From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.com>', 'To: "Support, Team" <support@example.com>, b@example.com', 'Subject: =?UTF-8?B?R3LDvMOfZQ==?=',
  'Date: Tue, 24 Nov 2026 10:00:00 +0100', 'Message-ID: <m1@example.com>', 'In-Reply-To: <p1@example.com>', 'References: <p0@example.com> <p1@example.com>', 'MIME-Version: 1.0'];

describe('the fast MIME path answers exactly as mailparser', () => {
  it('takes every message of the benchmark mix, with the same result', async () => {
    const generator = new BenchMailGenerator(3);
    for (let i = 0; i < 300; i++) {
      const { raw } = generator.next();
      expect(await fastParse(raw), `message ${i} was declined`).toBeDefined();
      await expectSameAsMailparser(raw, `message ${i}`);
    }
  });

  it('takes the test fixtures, with the same result, except the one whose HTML links cid: images', async () => {
    const taken: string[] = [];
    for (const { name, raw } of standardMix()) if (await expectSameAsMailparser(raw, name)) taken.push(name);
    expect(taken).toEqual(['plain', 'alternative', 'rfc2047', 'latin1']);
  });

  const accepted: Record<string, Buffer> = {
    'latin1 quoted-printable text': mail(...HEAD, 'Content-Type: text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding: quoted-printable', '', 'caf=E9 cr=E8me=', ' br=FBl=E9e', ''),
    'windows-1252 8bit text': Buffer.concat([mail(...HEAD, 'Content-Type: text/plain; charset=windows-1252', 'Content-Transfer-Encoding: 8bit', '', ''), Buffer.from([0x80, 0x93, 0x41, 0x94, 0x0d, 0x0a])]),
    'format=flowed with delsp': mail(...HEAD, 'Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes', '', 'a long line that was so ', 'ft-broken here', '> quoted', ''),
    'a text footer after an alternative': mail(...HEAD, 'Content-Type: multipart/mixed; boundary="out"', '', 'preamble', '--out', 'Content-Type: multipart/alternative; boundary="in"', '',
      '--in', 'Content-Type: text/plain', '', 'plain', '--in', 'Content-Type: text/html', '', '<p>html</p>', '--in--', 'epilogue', '--out',
      'Content-Type: text/plain', 'Content-Disposition: inline', '', 'footer', '--out--', 'trailing epilogue', ''),
    'attachments named four ways': mail(...HEAD, 'Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: text/plain', '', 'see attached', '--b',
      'Content-Type: application/octet-stream; name="report.pdf"', 'Content-Transfer-Encoding: base64', '', 'JVBERi0xLjQK', '--b',
      'Content-Type: application/vnd.ms-excel', 'Content-Disposition: attachment; filename*=UTF-8\'\'Gr%C3%BC%C3%9Fe%20%E2%82%AC.xls', 'Content-Transfer-Encoding: base64', '', 'AAEC', 'AwQF', '--b',
      'Content-Type: image/png; name="=?UTF-8?B?YmlsZCDDvC5wbmc=?="', 'Content-Disposition: inline', 'Content-ID: <img1@x>', 'Content-Transfer-Encoding: base64', '', 'iVBORw0KGgo=', '--b',
      'Content-Type: text/csv; charset=utf-8', 'Content-Disposition: attachment; filename="data.csv"', '', 'a,b', '1,2', '--b--', ''),
    'a related image without cid links': mail(...HEAD, 'Content-Type: multipart/related; boundary=r', '', '--r', 'Content-Type: text/html; charset=utf-8', '', '<p>hi</p>', '--r',
      'Content-Type: image/gif', 'Content-ID: <g@x>', 'Content-Transfer-Encoding: base64', '', 'R0lGODlhAQABAAAAACw=', '--r--', ''),
    'delimiters with trailing whitespace': mail(...HEAD, 'Content-Type: multipart/mixed; boundary=w', '', '--w  ', 'Content-Type: text/plain', '', 'one', '--w\t', '', 'two (no header)', '--w-- ', ''),
    'a line that only starts like a delimiter': mail(...HEAD, 'Content-Type: multipart/mixed; boundary=d', '', '--d', 'Content-Type: text/plain', '', '--dx is not a delimiter', '--d-x neither', '--d--', ''),
    'no Content-Type at all': mail('From: a@example.com', 'Subject: plain', '', 'body', ''),
    'an invalid Date header': mail('From: a@example.com', 'Date: yesterday-ish', '', 'body', ''),
  };
  for (const [name, raw] of Object.entries(accepted)) {
    it(`takes ${name}`, async () => {
      expect(await fastParse(raw)).toBeDefined();
      await expectSameAsMailparser(raw, name);
    });
  }

  it('decodes large base64 in slices to the same bytes', async () => {
    const bytes = Buffer.alloc(6 * 1024 * 1024 + 5, 0);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
    // 72-character lines hold 54 bytes, and the last line a partial quartet group with padding.
    const b64 = bytes.toString('base64').replace(/.{72}/g, `$&${CRLF}`);
    const raw = Buffer.concat([mail(...HEAD, 'Content-Type: multipart/mixed; boundary=big', '', '--big', 'Content-Type: text/plain', '', 'x', '--big',
      'Content-Type: application/zip', 'Content-Transfer-Encoding: base64', '', ''), Buffer.from(b64), Buffer.from(`${CRLF}--big--${CRLF}`)]);
    const fast = await fastParse(raw);
    expect(fast?.attachments[0]?.content.equals(bytes)).toBe(true);
    await expectSameAsMailparser(raw, 'large base64');
  });

  const declined: Record<string, Buffer> = {
    'an embedded message': mail(...HEAD, 'Content-Type: multipart/mixed; boundary=m', '', '--m', 'Content-Type: message/rfc822', '', 'Subject: inner', '', 'x', '--m--', ''),
    'bare LF line ends': Buffer.from('From: a@example.com\nSubject: lf\n\nbody\n'),
    'HTML only (mailparser makes its text)': mail(...HEAD, 'Content-Type: text/html', '', '<p>only html</p>', ''),
    'cid: links (mailparser inlines the images)': mail(...HEAD, 'Content-Type: multipart/related; boundary=r', '', '--r', 'Content-Type: multipart/alternative; boundary=a', '',
      '--a', 'Content-Type: text/plain', '', 'x', '--a', 'Content-Type: text/html', '', '<img src="cid:g@x">', '--a--', '--r', 'Content-Type: image/gif', 'Content-ID: <g@x>',
      'Content-Transfer-Encoding: base64', '', 'R0lGODlhAQABAAAAACw=', '--r--', ''),
    'base64url characters': mail(...HEAD, 'Content-Type: application/pdf', 'Content-Transfer-Encoding: base64', '', 'ab-_', ''),
    'data after base64 padding': mail(...HEAD, 'Content-Type: application/pdf', 'Content-Transfer-Encoding: base64', '', 'QQ==QQ==', ''),
    'no close delimiter': mail(...HEAD, 'Content-Type: multipart/mixed; boundary=c', '', '--c', 'Content-Type: text/plain', '', 'never closed', ''),
    'an empty body part': mail(...HEAD, 'Content-Type: multipart/mixed; boundary=e', '', '--e', 'Content-Type: text/plain', '', '', '--e', 'Content-Type: text/plain', '', 'x', '--e--', ''),
    'a multipart without boundary': mail(...HEAD, 'Content-Type: multipart/mixed', '', 'x', ''),
  };
  for (const [name, raw] of Object.entries(declined)) {
    it(`leaves ${name} to mailparser`, async () => {
      expect(await fastParse(raw)).toBeUndefined();
      // ...and parseMessage still parses it, through mailparser.
      expect(toParsed(raw, await mailparser(raw)).parseError).toBeUndefined();
    });
  }
});
