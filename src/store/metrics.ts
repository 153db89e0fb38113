import type { Db } from './database.js';

/**
 * What /metrics, `fetch --metrics-file` and /health report for one mailbox, read from the
 * database alone: every run (cron, daemon, HTTP trigger) writes the same rows, so the numbers add
 * up across processes and survive restarts.
 */
export interface MailboxMetrics {
  mailbox: string;
  /** Finished polls (mailbox_state.polls_total, migration 004). */
  pollsTotal: number;
  pollFailuresTotal: number;
  /** Receipts with outcome stored or headers-only: messages this mailbox added to the database. */
  messagesStoredTotal: number;
  /** Receipts with outcome duplicate: already stored (from this or another mailbox), skipped. */
  duplicatesTotal: number;
  /** Receipts with outcome oversize: left on the server, over maxMessageBytes. */
  oversizeTotal: number;
  /** Messages quarantined now (message_failures.quarantined_at set). */
  quarantined: number;
  bytesFetchedTotal: number;
  lastSuccessAt: Date | undefined;
  lastPollDurationMs: number | undefined;
  consecutiveFailures: number;
  /**
   * The error code of the latest failure (`AUTH`, `TLS`, ...): the part of last_error before the
   * colon, when it looks like one of our codes. Never the text, which may quote a server.
   */
  lastErrorCode: string | undefined;
}

/** One entry per name given, in that order; zeros for a mailbox never polled. */
export function readMailboxMetrics(db: Db, names: readonly string[]): MailboxMetrics[] {
  const state = db.prepare<[string], {
    polls_total: number; poll_failures_total: number; bytes_fetched_total: number; last_success_at: string | null;
    last_poll_duration_ms: number | null; consecutive_failures: number; last_error: string | null;
  }>(
    `SELECT polls_total, poll_failures_total, bytes_fetched_total, last_success_at, last_poll_duration_ms,
            consecutive_failures, last_error
     FROM mailbox_state WHERE mailbox = ?`,
  );
  const outcomes = db.prepare<[string], { outcome: string; n: number }>(
    'SELECT outcome, COUNT(*) AS n FROM receipts WHERE mailbox = ? GROUP BY outcome',
  );
  const quarantined = db.prepare<[string], { n: number }>(
    'SELECT COUNT(*) AS n FROM message_failures WHERE mailbox = ? AND quarantined_at IS NOT NULL',
  );
  // One read transaction: a poll committing meanwhile cannot make the counters disagree.
  return db.transaction(() =>
    names.map((mailbox): MailboxMetrics => {
      const s = state.get(mailbox);
      const counts = new Map(outcomes.all(mailbox).map((r) => [r.outcome, r.n]));
      const code = /^([A-Z][A-Z0-9_]{0,31}):/.exec(s?.last_error ?? '')?.[1];
      return {
        mailbox,
        pollsTotal: s?.polls_total ?? 0,
        pollFailuresTotal: s?.poll_failures_total ?? 0,
        messagesStoredTotal: (counts.get('stored') ?? 0) + (counts.get('headers-only') ?? 0),
        duplicatesTotal: counts.get('duplicate') ?? 0,
        oversizeTotal: counts.get('oversize') ?? 0,
        quarantined: quarantined.get(mailbox)?.n ?? 0,
        bytesFetchedTotal: s?.bytes_fetched_total ?? 0,
        lastSuccessAt: s?.last_success_at ? new Date(s.last_success_at) : undefined,
        lastPollDurationMs: s?.last_poll_duration_ms ?? undefined,
        consecutiveFailures: s?.consecutive_failures ?? 0,
        lastErrorCode: (s?.consecutive_failures ?? 0) > 0 ? (code ?? 'ERROR') : undefined,
      };
    }),
  )();
}
