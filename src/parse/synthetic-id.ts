import { createHash } from 'node:crypto';

/** The domain of every id we make up: `.invalid` is reserved (RFC 2606), so it can never clash with a real one. */
export const SYNTHETIC_ID_DOMAIN = 'mailpoll.invalid';

/**
 * A Message-ID for a message that has none, derived from its bytes and stored like any other
 * (without angle brackets): `<32 hex digits of sha256>@mailpoll.invalid`. The same bytes always
 * give the same id. CRLF counts as LF, because a server may serve a message stored with bare LF
 * as CRLF (Dovecot does), and the same message must not get a second id when fetched that way.
 */
export function syntheticMessageId(raw: Buffer): string {
  // Hashed line by line, skipping each CR before an LF: the same digest as hashing the message
  // with CRLF turned into LF, without a copy of it (a large message would be held three times).
  const hash = createHash('sha256');
  let from = 0;
  for (let lf = raw.indexOf(0x0a); lf !== -1; lf = raw.indexOf(0x0a, lf + 1)) {
    if (lf > 0 && raw[lf - 1] === 0x0d) {
      hash.update(raw.subarray(from, lf - 1));
      from = lf;
    }
  }
  hash.update(raw.subarray(from));
  return `${hash.digest('hex').slice(0, 32)}@${SYNTHETIC_ID_DOMAIN}`;
}
