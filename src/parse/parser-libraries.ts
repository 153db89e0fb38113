import mailsplit from '@zone-eu/mailsplit';
import libmime from 'libmime';
import { decode as decodeCharset } from 'libmime/lib/charset.js';
import { decode as decodeQp } from 'libqp';
import { MailParser, simpleParser } from 'mailparser';

/**
 * mailparser and the libraries it is built from, as ES modules, in one place that is only ever
 * loaded by `await import()`: a cron tick that finds no mail never loads any of it.
 *
 * One place, and the same module format for all of them, so mime-fast.ts and mailparser share one
 * copy of each library. Requiring them from CommonJS (as mime-fast did) while importing mailparser
 * loaded a second copy of the whole parser into the analysis worker, and kept it out of the bundle
 * (scripts/bundle.js), where it now loads as one file.
 */

export { simpleParser };

/** What mime-fast.ts calls: the library pieces mailparser is built from (typed there). */
export const parserLibraries = {
  MailParser: MailParser as unknown,
  MimeNode: mailsplit.MimeNode as unknown,
  detectMimeType: (filename: string): string | false => libmime.detectMimeType(filename),
  decodeFlowed: (binary: string, delSp: boolean): string => libmime.decodeFlowed(binary, delSp),
  decodeCharset: (bytes: Buffer, charset: string): string => decodeCharset(bytes, charset),
  decodeQp: (bytes: Buffer): Buffer => decodeQp(bytes),
};
