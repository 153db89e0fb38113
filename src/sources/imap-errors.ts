import type { MailboxConfig } from '../config/types.js';
import { AuthError, FolderError, MailpollError, ProtocolError, TlsError } from '../errors.js';
import { classifyNetworkError } from './tls-options.js';

/** The fields of imapflow's errors that say what went wrong. */
export interface ImapErrorShape {
  authenticationFailed?: boolean;
  tlsFailed?: boolean;
  serverResponseCode?: string;
  responseText?: string;
  /** A string for most commands; STATUS's NotFound error puts the failed response object here. */
  response?: unknown;
  code?: string;
}

/** The server's words in an imapflow error, when it has them as text. */
export function serverText(e: ImapErrorShape): string | undefined {
  return e.responseText ?? (typeof e.response === 'string' ? e.response : undefined);
}

/** A folder that cannot be opened: FolderError when it does not exist, else as imapFailure. */
export function folderFailure(err: unknown, mailbox: MailboxConfig, what: string): MailpollError {
  const e = (err ?? {}) as ImapErrorShape;
  // imapflow's STATUS checks with LIST and throws code NotFound; SELECT/EXAMINE carry the server's NO.
  if (e.code === 'NotFound' || e.serverResponseCode === 'NONEXISTENT' || /doesn't exist|not exist|unknown mailbox/i.test(serverText(e) ?? '')) {
    return new FolderError(`folder "${mailbox.folder}" does not exist`, { mailbox: mailbox.name, cause: err, serverResponse: serverText(e) });
  }
  return imapFailure(err, mailbox, what);
}

/** imapflow's errors as ours, for the IMAP source and the `test` probe alike. */
export function imapFailure(err: unknown, mailbox: MailboxConfig, what: string): MailpollError {
  if (err instanceof MailpollError) return err;
  const e = (err ?? {}) as ImapErrorShape;
  const serverResponse = serverText(e);
  const details = { mailbox: mailbox.name, cause: err, serverResponse };
  if (e.authenticationFailed) {
    return new AuthError(`login as ${mailbox.username} refused${serverResponse ? `: ${serverResponse}` : ''}`, details);
  }
  if (e.tlsFailed) {
    // classifyNetworkError adds the `ca:` hint for an unknown issuer; a STARTTLS failure is TLS whatever it says.
    const classified = classifyNetworkError(err, mailbox, what);
    return classified instanceof TlsError ? classified : new TlsError(`TLS failed: ${(err as Error).message}`, details);
  }
  if (e.serverResponseCode !== undefined || e.responseText !== undefined) {
    return new ProtocolError(`${what} failed: ${serverResponse ?? (err as Error).message}`, details);
  }
  return classifyNetworkError(err, mailbox, what);
}
