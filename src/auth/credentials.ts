/**
 * The credentials a mailbox logs in with, resolved at poll time: its password (env, file, command,
 * literal), or an OAuth2 access token (src/auth/oauth2.ts). Every value is registered with `scrub`.
 */
import { resolveSecret } from '../config/secrets.js';
import type { MailboxConfig } from '../config/types.js';
import { SecretError } from '../errors.js';
import { registerSecret, type Logger } from '../log.js';
import { openDatabase, type Db } from '../store/database.js';
import type { Credentials } from './login.js';
import { forgetAccessToken, obtainAccessToken } from './oauth2.js';

export type { Credentials } from './login.js';

/**
 * `db` holds the token cache; without it (e.g. `mailpoll test` on a config whose flows need no
 * cache) every call obtains a new token.
 */
export async function resolveCredentials(mailbox: MailboxConfig, db: Db | undefined, log?: Pick<Logger, 'debug'>): Promise<Credentials> {
  if (mailbox.oauth2 !== undefined) {
    const accessToken = await obtainAccessToken(mailbox.name, mailbox.oauth2.source, { db });
    log?.debug({ mailbox: mailbox.name, source: mailbox.oauth2.source.kind, mechanism: mailbox.oauth2.mechanism }, 'OAuth2 access token ready');
    return { kind: 'token', accessToken, mechanism: mailbox.oauth2.mechanism };
  }
  if (mailbox.password === undefined) throw new SecretError('no password and no oauth2 configured', { mailbox: mailbox.name });
  const password = await resolveSecret(mailbox.password, mailbox.name);
  registerSecret(password);
  return { kind: 'password', password };
}

/**
 * After a poll failed with AUTH: a login refused with a cached token drops that token, so the next run asks
 * the endpoint for a new one instead of failing until the cached one expires.
 */
export function afterLoginFailure(mailbox: MailboxConfig, db: Db | undefined): void {
  const source = mailbox.oauth2?.source.kind;
  if (source === 'clientCredentials' || source === 'refreshToken') forgetAccessToken(db, mailbox.name);
}

/** Whether any of these mailboxes gets its token from a token endpoint (and so wants the cache). */
export function usesTokenEndpoint(mailboxes: readonly MailboxConfig[]): boolean {
  return mailboxes.some((m) => m.oauth2?.source.kind === 'clientCredentials' || m.oauth2?.source.kind === 'refreshToken');
}

/**
 * The database as token cache for `mailpoll test`: opened only when one of `mailboxes` gets its
 * token from an endpoint; undefined otherwise. The caller closes it.
 */
export function openTokenCache(mailboxes: readonly MailboxConfig[], databaseFile: string): Db | undefined {
  if (!usesTokenEndpoint(mailboxes)) return undefined;
  return openDatabase(databaseFile);
}
