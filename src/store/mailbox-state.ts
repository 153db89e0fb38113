import type { Db } from './database.js';

/** The per-mailbox health record that `status` shows: last attempt, last success, failures. */
export function recordAttempt(db: Db, mailbox: string, at = new Date()): void {
  db.prepare(
    `INSERT INTO mailbox_state (mailbox, last_attempt_at) VALUES (?, ?)
     ON CONFLICT (mailbox) DO UPDATE SET last_attempt_at = excluded.last_attempt_at`,
  ).run(mailbox, at.toISOString());
}

/** What one poll measured; added to the mailbox's counters (migration 004, for metrics). */
export interface PollMeasure {
  durationMs: number;
  bytes: number;
}

export function recordOutcome(db: Db, mailbox: string, error: string | undefined, at = new Date(), poll: PollMeasure = { durationMs: 0, bytes: 0 }): void {
  // The counters change in the same statement as the outcome: metrics never disagree with status.
  const counters = `polls_total = polls_total + 1, bytes_fetched_total = bytes_fetched_total + excluded.bytes_fetched_total,
       last_poll_duration_ms = excluded.last_poll_duration_ms, last_poll_finished_at = excluded.last_poll_finished_at`;
  const measured = [Math.max(0, Math.round(poll.bytes)), Math.max(0, Math.round(poll.durationMs)), at.toISOString()];
  if (error === undefined) {
    db.prepare(
      `INSERT INTO mailbox_state (mailbox, last_success_at, polls_total, bytes_fetched_total, last_poll_duration_ms, last_poll_finished_at)
       VALUES (?, ?, 1, ?, ?, ?)
       ON CONFLICT (mailbox) DO UPDATE SET last_success_at = excluded.last_success_at, consecutive_failures = 0, last_error = NULL, ${counters}`,
    ).run(mailbox, at.toISOString(), ...measured);
  } else {
    db.prepare(
      `INSERT INTO mailbox_state (mailbox, consecutive_failures, last_error, polls_total, poll_failures_total, bytes_fetched_total, last_poll_duration_ms, last_poll_finished_at)
       VALUES (?, 1, ?, 1, 1, ?, ?, ?)
       ON CONFLICT (mailbox) DO UPDATE SET consecutive_failures = consecutive_failures + 1, last_error = excluded.last_error,
       poll_failures_total = poll_failures_total + 1, ${counters}`,
    ).run(mailbox, error, ...measured);
  }
}

/** The part of a mailbox's record that decides whether it is due. */
export function readHealth(db: Db, mailbox: string): { lastAttemptAt: Date | undefined; consecutiveFailures: number } {
  const row = db
    .prepare<[string], { last_attempt_at: string | null; consecutive_failures: number }>(
      'SELECT last_attempt_at, consecutive_failures FROM mailbox_state WHERE mailbox = ?',
    )
    .get(mailbox);
  return {
    lastAttemptAt: row?.last_attempt_at ? new Date(row.last_attempt_at) : undefined,
    consecutiveFailures: row?.consecutive_failures ?? 0,
  };
}
