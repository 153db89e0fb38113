import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_NAME_BYTES, safeFilename, uniquePath } from '../../src/files/safe-filename.js';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** The properties every result must have, whatever went in. */
function expectSafe(name: string): void {
  expect(name).not.toBe('');
  expect(name).not.toMatch(/[/\\<>:"|?*\u0000-\u001f\u007f-\u009f]/);
  expect(name).not.toMatch(/^[.\s]|[.\s]$/);
  expect(name.split('.')[0]?.trimEnd()).not.toMatch(/^(con|prn|aux|nul|com\d|lpt\d)$/i);
  expect(bytes(name)).toBeLessThanOrEqual(MAX_NAME_BYTES);
  expect(basename(name)).toBe(name);
}

describe('safeFilename', () => {
  it.each([
    ['../../etc/passwd', 'passwd'],
    ['..\\..\\win.ini', 'win.ini'],
    ['/etc/shadow', 'shadow'],
    ['C:\\Windows\\System32\\drivers\\etc\\hosts', 'hosts'],
    ['\\\\server\\share\\report.pdf', 'report.pdf'],
    ['dir/sub/', 'sub'],
    ['../../evil.sh', 'evil.sh'],
  ])('keeps only the last path segment of %j', (input, expected) => {
    expect(safeFilename(input, 'fallback')).toBe(expected);
  });

  it.each(['..', '.', '../..', '/', '\\', '', '   ', '...', '. . .', '\u0000', '<>:"|?*', '\u202e'])('falls back when nothing usable is left of %j', (input) => {
    expect(safeFilename(input, 'attachment-7.bin')).toBe('attachment-7.bin');
  });

  it('falls back for a missing name, and sanitises the fallback too', () => {
    expect(safeFilename(undefined, 'attachment-3.pdf')).toBe('attachment-3.pdf');
    expect(safeFilename(undefined, '../x:y')).toBe('x_y');
    expect(safeFilename(undefined, '..')).toBe('file');
  });

  it.each([
    ['CON.txt', '_CON.txt'],
    ['con', '_con'],
    ['nul.tar.gz', '_nul.tar.gz'],
    ['PRN', '_PRN'],
    ['Aux.doc', '_Aux.doc'],
    ['COM1.log', '_COM1.log'],
    ['lpt9', '_lpt9'],
    ['CON .txt', '_CON .txt'],
    ['CONSOLE.txt', 'CONSOLE.txt'],
    ['com10.txt', 'com10.txt'],
  ])('defuses the Windows device name in %j', (input, expected) => {
    expect(safeFilename(input, 'x')).toBe(expected);
  });

  it('removes NUL and other control characters instead of letting them cut or hide the name', () => {
    expect(safeFilename('evil.sh\u0000.pdf', 'x')).toBe('evil.sh_.pdf');
    expect(safeFilename('a\r\nb\tc\u001b[31m.txt', 'x')).toBe('a__b_c_[31m.txt');
    expect(safeFilename('c1\u009b.txt', 'x')).toBe('c1_.txt');
  });

  it('drops bidi overrides that would make an .exe display as .pdf', () => {
    expect(safeFilename('invoice\u202Efdp.exe', 'x')).toBe('invoicefdp.exe');
  });

  it('replaces the characters Windows refuses', () => {
    expect(safeFilename('a<b>c:d"e|f?g*h.txt', 'x')).toBe('a_b_c_d_e_f_g_h.txt');
    expect(safeFilename('report.pdf:hidden-stream', 'x')).toBe('report.pdf_hidden-stream');
  });

  it('removes trailing dots and spaces, and leading dots (no hidden files)', () => {
    expect(safeFilename('report.pdf. . ', 'x')).toBe('report.pdf');
    expect(safeFilename('.bashrc', 'x')).toBe('bashrc');
    expect(safeFilename('..hidden..', 'x')).toBe('hidden');
    expect(safeFilename('  spaced  .txt  ', 'x')).toBe('spaced  .txt');
  });

  it('keeps unicode names as the MIME decoder produced them (RFC 2047/2231), normalised to NFC', () => {
    expect(safeFilename('Grüße aus Köln – Störung.pdf', 'x')).toBe('Grüße aus Köln – Störung.pdf');
    expect(safeFilename('报告 2026.docx', 'x')).toBe('报告 2026.docx');
    expect(safeFilename('Счёт №5.xlsx', 'x')).toBe('Счёт №5.xlsx');
    expect(safeFilename('📎 notes.txt', 'x')).toBe('📎 notes.txt');
    expect(safeFilename('Cafe\u0301.txt', 'x')).toBe('Café.txt');
    expect(safeFilename('نامه\u200cها.pdf', 'x')).toBe('نامه\u200cها.pdf');
    expect(safeFilename('👩\u200d💻 setup.md', 'x')).toBe('👩\u200d💻 setup.md');
    expect(safeFilename('in\u200bvoice\u200e.pdf', 'x')).toBe('invoice.pdf');
  });

  it('shortens a long name to 200 bytes of UTF-8, keeping the extension and whole characters', () => {
    const ascii = safeFilename(`${'a'.repeat(500)}.pdf`, 'x');
    expect(ascii).toBe(`${'a'.repeat(196)}.pdf`);
    for (const ch of ['ü', '报', '😀']) {
      const name = safeFilename(`${ch.repeat(300)}.docx`, 'x');
      expect(name.endsWith('.docx')).toBe(true);
      expect(bytes(name)).toBeLessThanOrEqual(MAX_NAME_BYTES);
      expect(bytes(name)).toBeGreaterThan(MAX_NAME_BYTES - bytes(ch));
      expect(name).not.toContain('\ufffd');
      expect(Buffer.from(name, 'utf8').toString('utf8')).toBe(name);
      expect(name.slice(0, -'.docx'.length)).toBe(ch.repeat([...name.slice(0, -'.docx'.length)].length));
    }
  });

  it('cuts a long name with an absurd extension as a whole', () => {
    const name = safeFilename(`a.${'b'.repeat(400)}`, 'x');
    expect(bytes(name)).toBe(MAX_NAME_BYTES);
    expect(name.startsWith('a.b')).toBe(true);
  });

  it('replaces lone surrogates, which have no UTF-8 form', () => {
    expect(safeFilename('bad\ud800name.txt', 'x')).toBe('bad_name.txt');
  });

  it.each([
    '../../etc/passwd', '..\\..\\win.ini', '/abs/path', 'CON.txt', 'nul', 'a\u0000b', '....', `${'é'.repeat(300)}.txt`,
    'x'.repeat(1000), ' . /.. \\ . ', 'com1 .  .', '\u202e', '<>:"|?*', 'ok.txt',
  ])('always returns a plain, safe name for %j', (input) => {
    expectSafe(safeFilename(input, 'fallback.bin'));
  });
});

describe('uniquePath', () => {
  const dirs: string[] = [];
  const fresh = () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailpoll-unique-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('returns the name itself when it is free', () => {
    const dir = fresh();
    expect(uniquePath(dir, 'invoice.pdf')).toBe(join(resolve(dir), 'invoice.pdf'));
  });

  it('never returns an existing file: adds (1), (2)... before the extension', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'invoice.pdf'), 'first');
    writeFileSync(join(dir, 'invoice (1).pdf'), 'second');
    expect(uniquePath(dir, 'invoice.pdf')).toBe(join(resolve(dir), 'invoice (2).pdf'));
    writeFileSync(join(dir, 'README'), '');
    expect(uniquePath(dir, 'README')).toBe(join(resolve(dir), 'README (1)'));
    expect(readdirSync(dir).sort()).toEqual(['README', 'invoice (1).pdf', 'invoice.pdf']);
  });

  it('treats a dangling symlink as taken (writing to it would create its target elsewhere)', () => {
    const dir = fresh();
    const elsewhere = fresh();
    symlinkSync(join(elsewhere, 'planted'), join(dir, 'report.txt'));
    expect(uniquePath(dir, 'report.txt')).toBe(join(resolve(dir), 'report (1).txt'));
  });

  it('treats a directory as taken', () => {
    const dir = fresh();
    mkdirSync(join(dir, 'photos'));
    expect(uniquePath(dir, 'photos')).toBe(join(resolve(dir), 'photos (1)'));
  });

  it.each(['../escape.txt', '../../etc/passwd', '/etc/passwd', 'sub/inner.txt', '..', '.', ''])(
    'throws rather than return a path outside the directory or below it for %j',
    (name) => {
      const dir = fresh();
      expect(() => uniquePath(dir, name)).toThrow(/leaves its directory/);
    },
  );

  it('resolves every sanitised name to a direct child of the directory', () => {
    const dir = fresh();
    for (const hostile of ['../../etc/passwd', '..\\..\\win.ini', '/etc/passwd', '..', 'CON', '\u0000', '.ssh/authorized_keys']) {
      const path = uniquePath(dir, safeFilename(hostile, 'fallback.bin'));
      expect(dirname(path)).toBe(resolve(dir));
      expect(relative(resolve(dir), path).startsWith('..')).toBe(false);
    }
  });

  it('asks the given existence check, so the rule is testable without a disk', () => {
    const taken = new Set(['/inbox/a.txt', '/inbox/a (1).txt']);
    expect(uniquePath('/inbox', 'a.txt', (p) => taken.has(p))).toBe(resolve('/inbox/a (2).txt'));
  });
});
