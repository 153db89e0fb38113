import { lstatSync } from 'node:fs';
import { extname, isAbsolute, join, relative, resolve, sep } from 'node:path';

/**
 * File names that come from mail (attachment names, decoded from RFC 2047/2231 by the parser) are
 * chosen by whoever sent the mail. Everything here assumes the name is hostile.
 */

/** Bytes of UTF-8 a sanitised name may take: room is left for " (9999)" under the usual 255. */
export const MAX_NAME_BYTES = 200;

/** An extension longer than this is treated as part of the name when a long name is shortened. */
const MAX_EXTENSION_BYTES = 32;

/**
 * C0 and C1 control characters (NUL, ESC, newlines...), the characters Windows refuses in a name,
 * and lone UTF-16 surrogates (they cannot be encoded as UTF-8). `/` and `\` are split on first.
 */
const REPLACE = /[\u0000-\u001f\u007f-\u009f<>:"|?*]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Invisible format characters: bidi controls make `invoice\u202Efdp.exe` display as
 * `invoiceexe.pdf`; zero-width spaces make two names that look the same. ZWJ and ZWNJ
 * (U+200D, U+200C) stay: Persian and Indic spelling and emoji sequences need them.
 */
const INVISIBLE = /[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]/g;

/**
 * Device names Windows opens instead of a file, whatever the extension (`CON.txt`, `nul.tar.gz`)
 * and with trailing spaces before the dot. COM0/LPT0 and the superscript digits are reserved too.
 */
const RESERVED = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])$/i;

/** Past this many copies of one name something is wrong: stop rather than loop on. */
const MAX_COPIES = 9999;

const utf8Length = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * A name that is safe to create in a directory on Linux, macOS and Windows: no directory part, no
 * control or invisible characters, none of `<>:"/\|?*`, not hidden (no leading dot, so never `.`
 * or `..`), no trailing dot or space (Windows drops them, so two names could be one file), not a
 * Windows device name, at most {@link MAX_NAME_BYTES} bytes of UTF-8, cut on a character boundary
 * and keeping the extension. Letters in any script are kept. Falls back to `fallback` (sanitised
 * the same way, then `file`) when nothing is left.
 */
export function safeFilename(name: string | undefined, fallback: string): string {
  return clean(name ?? '') || clean(fallback) || 'file';
}

function clean(input: string): string {
  // The last non-empty path segment: `../../etc/passwd` -> `passwd`, `C:\dir\x.txt` -> `x.txt`.
  const segments = input.normalize('NFC').split(/[/\\]/).filter((s) => s !== '');
  let name = (segments.at(-1) ?? '')
    .replace(INVISIBLE, '')
    .replace(REPLACE, '_');
  name = trimEnds(name);
  // Nothing but placeholders (a name made of NULs or `<>:?*`) says nothing: use the fallback.
  if (/^[_.\s]*$/.test(name)) return '';
  const stem = name.split('.')[0]?.trimEnd() ?? '';
  if (RESERVED.test(stem)) name = `_${name}`;
  return trimEnds(truncate(name, MAX_NAME_BYTES));
}

/** No leading dots or spaces (hidden files, `..`), no trailing dots or spaces (Windows). */
const trimEnds = (s: string) => s.replace(/^[.\s]+/, '').replace(/[.\s]+$/, '');

/** Shortens the part before the extension so the whole is at most `limit` bytes of UTF-8. */
function truncate(name: string, limit: number): string {
  if (utf8Length(name) <= limit) return name;
  let ext = extname(name);
  if (utf8Length(ext) > MAX_EXTENSION_BYTES || ext === name) ext = '';
  const stem = cut(name.slice(0, name.length - ext.length), limit - utf8Length(ext)).replace(/[.\s]+$/, '');
  return stem === '' ? cut(name, limit) : stem + ext;
}

/** The longest prefix of whole code points within `limit` bytes (never half a UTF-8 sequence). */
function cut(s: string, limit: number): string {
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = utf8Length(ch);
    if (bytes + n > limit) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** Anything at the path, including a dangling symlink (writing there would follow it). */
function occupied(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}

/**
 * A path in `dir` for `name` where nothing exists yet: `name`, else `stem (1).ext`, `stem (2).ext`...
 * Throws when the result would not be a direct child of `dir` (pass names through
 * {@link safeFilename} first; this is the last line of defence, not the sanitiser).
 * Checking is not reserving: write with the `wx` flag and ask again on EEXIST.
 */
export function uniquePath(dir: string, name: string, exists: (path: string) => boolean = occupied): string {
  const root = resolve(dir);
  const ext = extname(name);
  const stem = ext === '' ? name : name.slice(0, -ext.length);
  for (let n = 0; n <= MAX_COPIES; n += 1) {
    const candidate = resolve(root, n === 0 ? name : `${stem} (${n})${ext}`);
    assertInside(root, candidate);
    if (!exists(candidate)) return candidate;
  }
  throw new Error(`${MAX_COPIES} files named like ${JSON.stringify(name)} already exist in ${root}`);
}

/** Throws unless `path` is a direct child of `root` (both absolute). */
function assertInside(root: string, path: string): void {
  const rel = relative(root, path);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel) || rel.includes(sep) || join(root, rel) !== path) {
    throw new Error(`refusing a file name that leaves its directory: ${JSON.stringify(path)} is not inside ${JSON.stringify(root)}`);
  }
}
