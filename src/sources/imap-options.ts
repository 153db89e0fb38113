import type { ImapFlowOptions } from 'imapflow';
import type { ConnectionOptions } from 'node:tls';
import { imapAuth, type Credentials } from '../auth/login.js';
import type { MailboxConfig } from '../config/types.js';

/**
 * The imapflow options every IMAP connection of a mailbox shares: the fetch session, the
 * `mailpoll test` probe and the daemon's IDLE watcher. Each caller adds what is its own.
 */
export function imapClientOptions(mailbox: MailboxConfig, credentials: Credentials, tls: ConnectionOptions): ImapFlowOptions {
  return {
    host: mailbox.host,
    port: mailbox.port,
    secure: mailbox.tls.mode === 'implicit',
    // true: STARTTLS is required and its absence is an error, never a silent plaintext session.
    doSTARTTLS: mailbox.tls.mode === 'starttls' ? true : mailbox.tls.mode === 'none' ? false : undefined,
    auth: imapAuth(mailbox.username, credentials),
    tls,
    logger: false,
    connectionTimeout: mailbox.timeouts.connectMs,
    greetingTimeout: mailbox.timeouts.connectMs,
    socketTimeout: mailbox.timeouts.commandMs,
    disableAutoIdle: true,
  };
}
