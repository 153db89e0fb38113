/**
 * SASL payloads for OAuth2 logins. Pure functions: no I/O, no secrets kept.
 */

/** Controls end a SASL field early (fields are \x01-separated): a value holding one is refused. */
const CONTROL = /[\x00-\x1f\x7f]/;

export function hasControlChars(value: string): boolean {
  return CONTROL.test(value);
}

/**
 * The XOAUTH2 initial client response, base64-encoded: `user=U ^A auth=Bearer T ^A ^A` (Google's and
 * Microsoft's XOAUTH2 format; the same for IMAP AUTHENTICATE and POP3 AUTH).
 */
export function xoauth2Response(user: string, accessToken: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`, 'utf8').toString('base64');
}

/**
 * The server's error details sent as a `+ base64(json)` challenge after a refused XOAUTH2/OAUTHBEARER
 * response (e.g. `{"status":"401","schemes":"bearer","scope":"..."}`): a short readable form, or
 * undefined when it is not base64 JSON.
 */
export function describeOAuthChallenge(challenge: string): string | undefined {
  const text = challenge.trim();
  if (text === '' || !/^[A-Za-z0-9+/]+=*$/.test(text)) return undefined;
  try {
    const json = JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as unknown;
    if (typeof json !== 'object' || json === null) return undefined;
    return Object.entries(json as Record<string, unknown>)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(', ');
  } catch {
    return undefined;
  }
}
