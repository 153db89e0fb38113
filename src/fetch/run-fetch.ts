import type { Config, MailboxConfig } from '../config/types.js';
import { afterLoginFailure, resolveCredentials, type Credentials } from '../auth/credentials.js';
import { errorMessage, MailpollError } from '../errors.js';
import { scrub, type Logger } from '../log.js';
import { createAnalyser, type Analyser } from '../parse/analyse-pool.js';
import type { MailSource } from '../sources/mail-source.js';
import type { Db } from '../store/database.js';
import { acquireLease, LEASE_TTL_MS, leaseOwnerId, releaseLease, renewLease } from '../store/leases.js';
import { readHealth, recordAttempt, recordOutcome } from '../store/mailbox-state.js';
import { MailStore, type StoreRules } from '../store/mail-store.js';
import { walCheckpoints } from '../store/wal-checkpoints.js';
import { ticketTokenMatcher } from '../tickets/subject.js';
import { pollMailbox } from './poll-mailbox.js';
import { dueFrom, isDue } from './schedule.js';
import { emptySummary, type FetchProgress, type MailboxSummary } from './summary.js';

export interface Selection {
  /** Only these mailboxes (by name); all when empty. */
  only: readonly string[];
  /** Poll the selected mailboxes whether or not they are due. */
  now: boolean;
}

export interface FetchOptions {
  /** Where messages are parsed; a worker pool made for this run by default. */
  analyser?: Analyser;
  /** Progress after each commit (a terminal's progress line). */
  onProgress?: (progress: FetchProgress) => void;
  concurrency: number;
  /** Aborted on shutdown (daemon): each mailbox finishes its message in hand and stops. */
  signal?: AbortSignal;
  /** Lease owner id; one per process by default. */
  owner?: string;
  /** Ticket rules from the config's `tickets:` section. */
  rules?: StoreRules;
}

/** The config's ticket rules in the form the store uses. */
export function storeRules(config: Config): StoreRules {
  return { ticketToken: ticketTokenMatcher(config.tickets.token), loopGuard: config.tickets.loopGuard };
}

const processOwner = leaseOwnerId();

/** Builds the protocol's source; heavy modules load here, only for a mailbox that is polled. */
export async function sourceFor(mailbox: MailboxConfig, password: string | Credentials, log: Logger): Promise<MailSource> {
  if (mailbox.protocol === 'imap') {
    const { imapSource } = await import('../sources/imap.js');
    return imapSource(mailbox, password);
  }
  const { pop3Source } = await import('../sources/pop3/source.js');
  return pop3Source(mailbox, password, log.child({ mailbox: mailbox.name }));
}

/** The selected mailboxes that are due now (all selected ones with `now`). Reads only SQLite. */
export function dueMailboxes(config: Config, db: Db, options: Selection, at = new Date()): MailboxConfig[] {
  const selected = options.only.length === 0 ? config.mailboxes : config.mailboxes.filter((m) => options.only.includes(m.name));
  if (options.now) return selected;
  return selected.filter((m) => isDue(readHealth(db, m.name), m.everyMs, at));
}

/** When the first of all mailboxes falls due; undefined when one is due already (or never polled). */
export function earliestDue(config: Config, db: Db): Date | undefined {
  let earliest: Date | undefined;
  for (const m of config.mailboxes) {
    const from = dueFrom(readHealth(db, m.name), m.everyMs);
    if (from === undefined) return undefined;
    if (earliest === undefined || from < earliest) earliest = from;
  }
  return earliest;
}

/**
 * Polls the given mailboxes, up to `concurrency` at once. Each is leased first, so a second run
 * skips it instead of polling it twice; a failing mailbox is contained in its own summary and
 * the others run on. SQLite writes stay on this one thread.
 */
export async function runFetch(mailboxes: readonly MailboxConfig[], db: Db, options: FetchOptions, log: Logger): Promise<MailboxSummary[]> {
  const analyser = options.analyser ?? createAnalyser();
  const store = new MailStore(db, options.rules);
  // WAL checkpoints leave the writing thread for one of their own (wal-checkpoints.ts); should that
  // thread fail, or after the run, the connection's own automatic checkpoint is back on. SQLite's
  // default, not the value read before: runs of the daemon can overlap, and the second would read
  // 0 and leave the checkpoint off for good.
  const autoCheckpoint = () => db.pragma('wal_autocheckpoint = 1000');
  const checkpoints = store.walFile === undefined ? undefined : walCheckpoints(db.name, autoCheckpoint);
  const shared: Shared = { store, analyser, afterCommit: checkpoints?.afterCommit };
  const results: MailboxSummary[] = new Array(mailboxes.length);
  let next = 0;
  const worker = async () => {
    while (next < mailboxes.length) {
      const index = next++;
      results[index] = await pollLeased(mailboxes[index] as MailboxConfig, db, shared, options, log);
    }
  };
  if (checkpoints !== undefined) {
    db.pragma('wal_autocheckpoint = 0');
    // Commits of a run are written, not synced: a commit survives a crash of this process either
    // way (WAL mode), and what must survive a power cut too, a message before it is acknowledged on
    // the server, is synced off this thread first (MailStore.syncWal, poll-mailbox.ts). One fsync
    // per group commit on this thread was 5-15 ms each during which no byte was read from the network.
    db.pragma('synchronous = NORMAL');
  }
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, mailboxes.length)) }, worker));
  } finally {
    if (checkpoints !== undefined) {
      autoCheckpoint();
      // openDatabase's setting, not the value read before: runs of the daemon can overlap.
      db.pragma('synchronous = FULL');
      await checkpoints.close();
    }
    if (options.analyser === undefined) await analyser.close();
  }
  return results;
}

/** What every poll of one run shares. */
interface Shared {
  store: MailStore;
  analyser: Analyser;
  /** After each group commit: the WAL checkpoint handed to its thread, when there is one. */
  afterCommit: (() => void) | undefined;
}

async function pollLeased(mailbox: MailboxConfig, db: Db, shared: Shared, options: FetchOptions, log: Logger): Promise<MailboxSummary> {
  const owner = options.owner ?? processOwner;
  const lease = acquireLease(db, mailbox.name, owner);
  if (!lease.acquired) {
    const summary = emptySummary(mailbox.name);
    summary.skipped = `in use by another run (${lease.owner}) until ${lease.expiresAt}`;
    log.info({ mailbox: mailbox.name, holder: lease.owner }, 'skipped: another run is polling this mailbox');
    return summary;
  }
  // Renew well before expiry; a long poll keeps its mailbox, a crashed one loses it in LEASE_TTL_MS.
  const renew = setInterval(() => {
    if (!renewLease(db, mailbox.name, owner)) log.warn({ mailbox: mailbox.name }, 'lease lost; another run may poll this mailbox too (dedupe keeps it safe)');
  }, LEASE_TTL_MS / 4);
  try {
    return await pollOne(mailbox, db, shared, options, log);
  } finally {
    clearInterval(renew);
    releaseLease(db, mailbox.name, owner);
  }
}

async function pollOne(mailbox: MailboxConfig, db: Db, shared: Shared, options: FetchOptions, log: Logger): Promise<MailboxSummary> {
  const started = Date.now();
  recordAttempt(db, mailbox.name);
  warnAboutWeakTls(mailbox, log);
  let summary: MailboxSummary;
  try {
    const credentials = await resolveCredentials(mailbox, db, log);
    const source = await sourceFor(mailbox, credentials, log);
    summary = await pollMailbox(mailbox, source, { ...shared, log, signal: options.signal, onProgress: options.onProgress });
    if (summary.errorCode === 'AUTH') afterLoginFailure(mailbox, db);
  } catch (err) {
    summary = emptySummary(mailbox.name);
    summary.ok = false;
    summary.error = scrub(errorMessage(err));
    summary.errorCode = err instanceof MailpollError ? err.code : 'UNEXPECTED';
    log.error({ mailbox: mailbox.name, code: summary.errorCode, err: summary.error }, 'mailbox failed');
  }
  recordOutcome(db, mailbox.name, summary.ok ? undefined : `${summary.errorCode}: ${summary.error}`, new Date(), { durationMs: Date.now() - started, bytes: summary.bytes });
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
