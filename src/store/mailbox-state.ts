import type { Db } from './database.js';

/** The per-mailbox health record that `status` shows: last attempt, last success, failures. */
export function recordAttempt(db: Db, mailbox: string, at = new Date()): void {
  db.prepare(
    `INSERT INTO mailbox_state (mailbox, last_attempt_at) VALUES (?, ?)
     ON CONFLICT (mailbox) DO UPDATE SET last_attempt_at = excluded.last_attempt_at`,
  ).run(mailbox, at.toISOString());
}

export function recordOutcome(db: Db, mailbox: string, error: string | undefined, at = new Date()): void {
  if (error === undefined) {
    db.prepare(
      `INSERT INTO mailbox_state (mailbox, last_success_at) VALUES (?, ?)
       ON CONFLICT (mailbox) DO UPDATE SET last_success_at = excluded.last_success_at, consecutive_failures = 0, last_error = NULL`,
    ).run(mailbox, at.toISOString());
  } else {
    db.prepare(
      `INSERT INTO mailbox_state (mailbox, consecutive_failures, last_error) VALUES (?, 1, ?)
       ON CONFLICT (mailbox) DO UPDATE SET consecutive_failures = consecutive_failures + 1, last_error = excluded.last_error`,
    ).run(mailbox, error);
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
