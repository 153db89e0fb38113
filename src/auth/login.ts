/**
 * How a resolved credential logs in, for every place that logs in (fetch, `mailpoll test`, the IDLE
 * watcher). Light on purpose: imported by the protocol sources, it loads no database and no HTTP.
 */
import type { ImapFlow } from 'imapflow';
import type { MailboxConfig } from '../config/types.js';
import { AuthError } from '../errors.js';
import type { Pop3Client } from '../sources/pop3/client.js';

export type OAuth2Mechanism = 'xoauth2' | 'oauthbearer';

/** What a mailbox logs in with, resolved at poll time; never logged. */
export type Credentials =
  | { kind: 'password'; password: string }
  | { kind: 'token'; accessToken: string; mechanism: OAuth2Mechanism };

/** A plain string is a password (the sources' original signature). */
export function asCredentials(c: string | Credentials): Credentials {
  return typeof c === 'string' ? { kind: 'password', password: c } : c;
}

/** imapflow's `auth` option: `accessToken` makes it AUTHENTICATE with XOAUTH2 or OAUTHBEARER. */
export function imapAuth(username: string, c: Credentials): { user: string; pass: string } | { user: string; accessToken: string } {
  return c.kind === 'password' ? { user: username, pass: c.password } : { user: username, accessToken: c.accessToken };
}

const CAP: Record<OAuth2Mechanism, string[]> = { xoauth2: ['AUTH=XOAUTH2', 'AUTH=XOAUTH'], oauthbearer: ['AUTH=OAUTHBEARER'] };

/**
 * imapflow picks OAUTHBEARER whenever the server offers it, XOAUTH2 otherwise, with no option to
 * choose. To honour `mechanism:`, the other mechanism is hidden from the capability list just
 * before imapflow authenticates (the list is read again after login). When the server offers only
 * the other mechanism, that one is used: both carry the same bearer token. A server offering
 * neither is refused here with a clear AuthError instead of imapflow's generic one.
 */
export function chooseImapMechanism(client: ImapFlow, mailbox: MailboxConfig, c: Credentials): void {
  if (c.kind !== 'token') return;
  const target = client as unknown as { authenticate: () => Promise<boolean>; capabilities: Map<string, unknown> };
  const original = target.authenticate.bind(client);
  target.authenticate = async () => {
    const caps = target.capabilities;
    const offers = (m: OAuth2Mechanism) => CAP[m].some((k) => caps.has(k));
    if (!offers('xoauth2') && !offers('oauthbearer')) {
      // authenticationFailed: imapflow's mark for a login failure (the probe reports step "login").
      throw Object.assign(
        new AuthError(
          `IMAP server ${mailbox.host}:${mailbox.port} offers neither AUTH=XOAUTH2 nor AUTH=OAUTHBEARER; it cannot log in ${mailbox.username} with an OAuth2 token`,
          { mailbox: mailbox.name },
        ),
        { authenticationFailed: true },
      );
    }
    if (offers(c.mechanism)) {
      const other: OAuth2Mechanism = c.mechanism === 'xoauth2' ? 'oauthbearer' : 'xoauth2';
      for (const k of CAP[other]) caps.delete(k);
    }
    return original();
  };
}

/** POP3 login: AUTH XOAUTH2 for a token, else AUTH PLAIN or USER/PASS. */
export async function pop3Login(client: Pop3Client, username: string, c: Credentials): Promise<void> {
  if (c.kind === 'token') await client.loginXoauth2(username, c.accessToken);
  else await client.login(username, c.password);
}
