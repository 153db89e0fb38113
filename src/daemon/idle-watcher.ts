import { imapClientOptions } from '../sources/imap-options.js';
import type { ExistsEvent, ImapFlow } from 'imapflow';
import { resolveCredentials } from '../auth/credentials.js';
import { chooseImapMechanism } from '../auth/login.js';
import type { MailboxConfig } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { scrub, type Logger } from '../log.js';
import type { Db } from '../store/database.js';
import { tlsOptionsFor } from '../sources/tls-options.js';
import { MIN_TURN_MS, watcherBackoff } from './plan.js';

/**
 * Re-issue IDLE this often. RFC 2177 section 3: a server may log out a client idle for 30 minutes,
 * so a client re-issues IDLE at least every 29; NAT boxes forget silent connections far sooner.
 * Restarting every few minutes also proves the connection alive (DONE must be answered).
 */
const IDLE_RESTART_MS = 5 * 60_000;

/**
 * Socket inactivity allowed on the watcher connection. Longer than IDLE_RESTART_MS: a server in
 * IDLE may rightly send nothing until then (Dovecot says "* OK Still here" every 2 minutes).
 */
const WATCHER_SOCKET_TIMEOUT_MS = IDLE_RESTART_MS + 60_000;

/** How long a polite LOGOUT may take on shutdown before the socket is simply closed. */
const LOGOUT_GRACE_MS = 2_000;

export type WakeReason = 'new-mail' | 'connected';

export interface IdleWatcherOptions {
  mailbox: MailboxConfig;
  /** The OAuth2 token cache (an `oauth2:` mailbox); without it each connection gets a new token. */
  db?: Db;
  log: Logger;
  /**
   * Called when the folder may hold mail the daemon has not polled yet: the server reported more
   * messages, or the watcher (re)connected and so may have missed a report while it was away.
   */
  onWake: (reason: WakeReason) => void;
}

/**
 * Keeps one extra IMAP connection per `idle: true` mailbox open on its folder in IDLE (RFC 2177)
 * and wakes the daemon when the server reports new mail. The watcher only listens: it EXAMINEs
 * the folder (read-only, RFC 3501 section 6.3.2), never fetches and never changes anything; the
 * poll it triggers opens its own session under the mailbox's lease, like any other poll.
 *
 * IDLE is an accelerator, not the safety net: the mailbox is still polled on its `every`, so mail
 * is never missed while the watcher is disconnected, only picked up later. The watcher reconnects
 * with backoff (plan.ts `watcherBackoff`) whenever its connection closes or fails.
 */
export class IdleWatcher {
  private stopped = false;
  private readonly stopping = new AbortController();
  private client: ImapFlow | undefined;
  private loop: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(private readonly options: IdleWatcherOptions) {
    this.log = options.log.child({ mailbox: options.mailbox.name, component: 'idle' });
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Closes the connection and ends the reconnect loop; resolves once nothing is left running. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    const client = this.client;
    if (client !== undefined) await closeClient(client);
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let reachedIdle = false;
      try {
        reachedIdle = await this.session();
      } catch (err) {
        if (!this.stopped) this.log.warn({ err: scrub(errorMessage(err)) }, 'IDLE watcher connection failed');
      } finally {
        const client = this.client;
        this.client = undefined;
        if (client !== undefined) await closeClient(client);
      }
      if (this.stopped) break;
      failures = reachedIdle ? 1 : failures + 1;
      const delay = watcherBackoff(failures);
      this.log.info({ retryInMs: delay }, 'IDLE watcher disconnected; reconnecting');
      await sleep(delay, this.stopping.signal);
    }
  }

  /** One connection: connect, EXAMINE, IDLE until it closes. True if it got as far as IDLE. */
  private async session(): Promise<boolean> {
    const mailbox = this.options.mailbox;
    const credentials = await resolveCredentials(mailbox, this.options.db);
    const { ImapFlow } = await import('imapflow');
    const client = new ImapFlow({
      ...imapClientOptions(mailbox, credentials, await tlsOptionsFor(mailbox)),
      socketTimeout: Math.max(mailbox.timeouts.commandMs, WATCHER_SOCKET_TIMEOUT_MS),
      // IDLE is started explicitly below, once the folder is open.
      maxIdleTime: IDLE_RESTART_MS,
    });
    this.client = client;
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    // imapflow emits 'error' once, then closes; unhandled it would crash the daemon.
    client.on('error', (err: Error) => {
      if (!this.stopped) this.log.warn({ err: scrub(errorMessage(err)) }, 'IDLE watcher connection error');
    });
    client.on('exists', (event: ExistsEvent) => {
      // EXPUNGE lowers the count (our own polls delete and move mail): only a rise is news.
      if (event.count > event.prevCount) {
        this.log.debug({ count: event.count, previous: event.prevCount }, 'IDLE: new mail reported');
        this.options.onWake('new-mail');
      }
    });
    if (this.stopped) return false;
    chooseImapMechanism(client, mailbox, credentials);
    await client.connect();
    await client.mailboxOpen(mailbox.folder, { readOnly: true });
    if (this.stopped) return false;
    this.log.info({ folder: mailbox.folder }, 'IDLE watcher waiting for new mail');
    // IDLE reports only what changes from now on: mail that arrived since the last poll started,
    // or while this watcher was away, would otherwise wait for the next `every`.
    this.options.onWake('connected');
    while (!this.stopped && client.usable && client.mailbox !== false) {
      const started = Date.now();
      // Returns when the connection closes, or when imapflow broke IDLE for a command of its own
      // (a keep-alive NOOP after a quiet spell); then IDLE is simply entered again.
      await client.idle();
      const elapsed = Date.now() - started;
      if (elapsed < MIN_TURN_MS) await sleep(MIN_TURN_MS - elapsed, this.stopping.signal);
    }
    await Promise.race([closed, sleep(LOGOUT_GRACE_MS, this.stopping.signal)]);
    return true;
  }
}

async function closeClient(client: ImapFlow): Promise<void> {
  if (client.usable) {
    await Promise.race([client.logout().catch(() => undefined), sleep(LOGOUT_GRACE_MS)]);
  }
  client.close();
}

/** Resolves after `ms`, or at once when `signal` is aborted. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
