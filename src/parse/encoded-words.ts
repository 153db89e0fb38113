/**
 * A second decoder for RFC 2047 encoded-words, for the two cases mailparser gets wrong: raw 8-bit
 * bytes inside an encoded-word (mailparser turns the header into UTF-8 first, so the byte is already
 * U+FFFD when the word's charset is applied) and the UTF-7 charset (RFC 2152), which it leaves
 * encoded. Works on the header's raw bytes read as latin1, one char per byte.
 */
const ENCODED_WORD = /=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=/g;

/** True when `rawLatin1` holds an encoded-word that mailparser would mangle. */
export function needsOwnDecoding(rawLatin1: string): boolean {
  for (const m of rawLatin1.matchAll(ENCODED_WORD)) {
    if (/[\x80-\xff]/.test(m[3] ?? '') || /^utf-?7(\*|$)/i.test(m[1] ?? '')) return true;
  }
  return false;
}

/** Decodes every encoded-word; whitespace between two adjacent words is dropped (RFC 2047 section 6.2). */
export function decodeEncodedWords(rawLatin1: string): string {
  const joined = rawLatin1.replace(/(\?=)\s+(?==\?)/g, '$1');
  return joined.replace(ENCODED_WORD, (_, charset: string, encoding: string, text: string) => {
    const bytes = encoding.toUpperCase() === 'B' ? Buffer.from(text, 'base64') : qBytes(text);
    return decodeBytes(bytes, charset.replace(/\*.*$/, ''));
  });
}

function qBytes(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '_') out.push(0x20);
    else if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(c.charCodeAt(0) & 0xff);
  }
  return Buffer.from(out);
}

function decodeBytes(bytes: Buffer, charset: string): string {
  if (/^utf-?7$/i.test(charset)) return decodeUtf7(bytes.toString('latin1'));
  try {
    return new TextDecoder(charset).decode(bytes);
  } catch {
    return bytes.toString('latin1'); // an unknown charset degrades to latin1, never an exception
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** RFC 2152: `+` opens modified base64 of UTF-16, closed by `-` or any non-base64 char; `+-` is `+`. */
export function decodeUtf7(text: string): string {
  return text.replace(/\+([A-Za-z0-9+/]*)-?/g, (whole, b64: string) => {
    if (b64 === '') return whole === '+-' ? '+' : whole;
    let bits = 0;
    let value = 0;
    const units: number[] = [];
    for (const ch of b64) {
      value = (value << 6) | B64.indexOf(ch);
      bits += 6;
      if (bits >= 16) {
        bits -= 16;
        units.push((value >> bits) & 0xffff);
      }
    }
    return String.fromCharCode(...units);
  });
}
