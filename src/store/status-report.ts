import { nextDueAt } from '../fetch/schedule.js';
import type { Db } from './database.js';

export interface MailboxStatus {
  mailbox: string;
  lastAttemptAt: string | null;
  lastSuccessAt: string | null;
  /** ISO time, or null when it was never polled (due at once). */
  nextDueAt: string | null;
  consecutiveFailures: number;
  lastError: string | null;
  stored: number;
  duplicates: number;
  oversize: number;
  /** Oversize messages stored with their headers only (`oversize: headers`). */
  headersOnly: number;
  /** Acknowledgements still owed to the server (a run died between commit and acknowledgement). */
  owedAcknowledgements: number;
  quarantined: { serverId: string; attempts: number; lastError: string; quarantinedAt: string }[];
  /** Set while another run holds the mailbox. */
  leasedBy: string | null;
}

export interface StatusReport {
  mailboxes: MailboxStatus[];
  totals: { tickets: number; messages: number; attachments: number; rawBytes: number; attachmentBytes: number; quarantined: number };
}

/** What `status` shows, read from the database for the configured mailboxes. */
export function statusReport(db: Db, mailboxes: readonly { name: string; everyMs: number }[], now = new Date()): StatusReport {
  const state = db.prepare<[string], {
    last_attempt_at: string | null; last_success_at: string | null; consecutive_failures: number;
    last_error: string | null; lease_owner: string | null; lease_expires_at: string | null;
  }>('SELECT last_attempt_at, last_success_at, consecutive_failures, last_error, lease_owner, lease_expires_at FROM mailbox_state WHERE mailbox = ?');
  const outcomes = db.prepare<[string], { outcome: string; n: number; owed: number }>(
    'SELECT outcome, COUNT(*) AS n, SUM(acknowledged_at IS NULL) AS owed FROM receipts WHERE mailbox = ? GROUP BY outcome',
  );
  const quarantined = db.prepare<[string], { server_id: string; attempts: number; last_error: string; quarantined_at: string }>(
    'SELECT server_id, attempts, last_error, quarantined_at FROM message_failures WHERE mailbox = ? AND quarantined_at IS NOT NULL ORDER BY quarantined_at',
  );
  const rows = mailboxes.map((m): MailboxStatus => {
    const s = state.get(m.name);
    const counts = new Map(outcomes.all(m.name).map((r) => [r.outcome, r]));
    const due = nextDueAt(
      { lastAttemptAt: s?.last_attempt_at ? new Date(s.last_attempt_at) : undefined, consecutiveFailures: s?.consecutive_failures ?? 0 },
      m.everyMs,
    );
    const leaseLive = s?.lease_owner && s.lease_expires_at && s.lease_expires_at > now.toISOString();
    return {
      mailbox: m.name,
      lastAttemptAt: s?.last_attempt_at ?? null,
      lastSuccessAt: s?.last_success_at ?? null,
      nextDueAt: due?.toISOString() ?? null,
      consecutiveFailures: s?.consecutive_failures ?? 0,
      lastError: s?.last_error ?? null,
      stored: counts.get('stored')?.n ?? 0,
      duplicates: counts.get('duplicate')?.n ?? 0,
      oversize: counts.get('oversize')?.n ?? 0,
      headersOnly: counts.get('headers-only')?.n ?? 0,
      owedAcknowledgements: [...counts.values()].reduce((sum, r) => sum + (r.owed ?? 0), 0),
      quarantined: quarantined.all(m.name).map((q) => ({ serverId: q.server_id, attempts: q.attempts, lastError: q.last_error, quarantinedAt: q.quarantined_at })),
      leasedBy: leaseLive ? (s?.lease_owner ?? null) : null,
    };
  });
  const one = (sql: string) => (db.prepare(sql).get() as { n: number | null }).n ?? 0;
  return {
    mailboxes: rows,
    totals: {
      tickets: one('SELECT COUNT(*) AS n FROM tickets'),
      messages: one('SELECT COUNT(*) AS n FROM messages'),
      attachments: one('SELECT COUNT(*) AS n FROM attachments'),
      rawBytes: one('SELECT SUM(raw_size) AS n FROM messages'),
      attachmentBytes: one('SELECT SUM(size) AS n FROM attachment_contents'),
      quarantined: one('SELECT COUNT(*) AS n FROM message_failures WHERE quarantined_at IS NOT NULL'),
    },
  };
}
