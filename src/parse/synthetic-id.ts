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
  const normalised = raw.includes('\r\n') ? Buffer.from(raw.toString('latin1').replaceAll('\r\n', '\n'), 'latin1') : raw;
  return `${createHash('sha256').update(normalised).digest('hex').slice(0, 32)}@${SYNTHETIC_ID_DOMAIN}`;
}
