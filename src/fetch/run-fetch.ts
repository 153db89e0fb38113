import type { Config, MailboxConfig } from '../config/types.js';
import { resolveSecret } from '../config/secrets.js';
import { errorMessage, MailpollError } from '../errors.js';
import { registerSecret, scrub, type Logger } from '../log.js';
import { parseMessage } from '../parse/parse-message.js';
import type { MailSource } from '../sources/mail-source.js';
import type { Db } from '../store/database.js';
import { recordAttempt, recordOutcome } from '../store/mailbox-state.js';
import { MailStore } from '../store/mail-store.js';
import { pollMailbox } from './poll-mailbox.js';
import { emptySummary, type MailboxSummary } from './summary.js';

export interface FetchOptions {
  /** Only these mailboxes (by name); all when empty. */
  only: readonly string[];
  concurrency: number;
}

/** Builds the protocol's source; heavy modules load here, only for a mailbox that is polled. */
export async function sourceFor(mailbox: MailboxConfig, password: string, log: Logger): Promise<MailSource> {
  if (mailbox.protocol === 'imap') {
    const { imapSource } = await import('../sources/imap.js');
    return imapSource(mailbox, password);
  }
  const { pop3Source } = await import('../sources/pop3/source.js');
  return pop3Source(mailbox, password, log.child({ mailbox: mailbox.name }));
}

/**
 * Polls the selected mailboxes, up to `concurrency` at once. A failing mailbox is contained in its
 * own summary; the others run on. SQLite writes stay on this one thread.
 */
export async function runFetch(config: Config, db: Db, options: FetchOptions, log: Logger): Promise<MailboxSummary[]> {
  const selected = options.only.length === 0 ? config.mailboxes : config.mailboxes.filter((m) => options.only.includes(m.name));
  const store = new MailStore(db);
  const results: MailboxSummary[] = new Array(selected.length);
  let next = 0;
  const worker = async () => {
    while (next < selected.length) {
      const index = next++;
      const mailbox = selected[index] as MailboxConfig;
      results[index] = await pollOne(mailbox, db, store, log);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, selected.length)) }, worker));
  return results;
}

async function pollOne(mailbox: MailboxConfig, db: Db, store: MailStore, log: Logger): Promise<MailboxSummary> {
  recordAttempt(db, mailbox.name);
  warnAboutWeakTls(mailbox, log);
  let summary: MailboxSummary;
  try {
    const password = await resolveSecret(mailbox.password, mailbox.name);
    registerSecret(password);
    summary = await pollMailbox(mailbox, await sourceFor(mailbox, password, log), { store, parse: parseMessage, log });
  } catch (err) {
    summary = emptySummary(mailbox.name);
    summary.ok = false;
    summary.error = scrub(errorMessage(err));
    summary.errorCode = err instanceof MailpollError ? err.code : 'UNEXPECTED';
    log.error({ mailbox: mailbox.name, code: summary.errorCode, err: summary.error }, 'mailbox failed');
  }
  recordOutcome(db, mailbox.name, summary.ok ? undefined : `${summary.errorCode}: ${summary.error}`);
  return summary;
}

/** Every run, not once: a weakened mailbox must stay visible in the logs for as long as it is weak. */
function warnAboutWeakTls(mailbox: MailboxConfig, log: Logger): void {
  if (mailbox.tls.mode === 'none') {
    log.warn({ mailbox: mailbox.name }, 'tls: none — the password and all mail cross the network unencrypted');
  }
  if (mailbox.tls.insecureSkipVerify) {
    log.warn({ mailbox: mailbox.name }, 'insecureSkipVerify: true — the server certificate is NOT verified; anyone on the path can read this mailbox');
  }
}
