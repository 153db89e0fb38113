import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * The API key check of the HTTP trigger. The key may come as `Authorization: Bearer <key>` or, for
 * the `wget --user-agent=<key>` habit osTicket's external trigger taught its users, as the whole
 * User-Agent header. Nothing else is looked at (an `X-Api-Key` header, a query parameter) so a key
 * never ends up in a URL or an access log by accident.
 */
export class ApiKey {
  private readonly digest: Buffer;

  constructor(key: string) {
    if (key.length === 0) throw new Error('an empty API key');
    this.digest = sha256(key);
  }

  /**
   * Constant time: both sides are hashed first, so timingSafeEqual compares 32 bytes whatever
   * was sent, and neither the key's length nor how much of it matched shows in the timing.
   */
  matches(candidate: string | undefined): boolean {
    const same = timingSafeEqual(sha256(candidate ?? ''), this.digest);
    return same && candidate !== undefined;
  }

  /** True when the Bearer token or the User-Agent is the key. Both are always compared. */
  authorizes(headers: IncomingHttpHeaders): boolean {
    const bearer = this.matches(bearerToken(headers.authorization));
    const agent = this.matches(headers['user-agent']);
    return bearer || agent;
  }
}

/** The token of `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive). */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(authorization);
  return match?.[1];
}

/** Shorter keys are refused at startup: the trigger may face a network, and guessing must be hopeless. */
export const MIN_API_KEY_LENGTH = 16;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
