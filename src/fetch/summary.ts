/** What one mailbox's poll did; printed by `fetch` and kept for `--json`. */
export interface MailboxSummary {
  mailbox: string;
  ok: boolean;
  /** Set when this run did not poll the mailbox (another run holds it); not a failure. */
  skipped: string | undefined;
  /** One line a sysadmin can act on; secrets scrubbed. */
  error: string | undefined;
  errorCode: string | undefined;
  /** Candidates the server listed that were new to us (before the per-run cap). */
  listed: number;
  fetched: number;
  stored: number;
  duplicates: number;
  /** Left on the server: over maxMessageBytes. */
  oversize: number;
  newTickets: number;
  /** Messages that failed this run and will be retried. */
  messageFailures: number;
  /** Messages given up on this run after repeated failures (left on the server). */
  quarantined: number;
  /** Post-fetch actions applied on the server (including ones owed by an earlier run). */
  acknowledged: number;
  bytes: number;
  durationMs: number;
}

export function emptySummary(mailbox: string): MailboxSummary {
  return {
    mailbox,
    ok: true,
    skipped: undefined,
    error: undefined,
    errorCode: undefined,
    listed: 0,
    fetched: 0,
    stored: 0,
    duplicates: 0,
    oversize: 0,
    newTickets: 0,
    messageFailures: 0,
    quarantined: 0,
    acknowledged: 0,
    bytes: 0,
    durationMs: 0,
  };
}

/** Where a running poll stands, for a progress line. */
export interface FetchProgress {
  mailbox: string;
  /** Messages handled (stored, duplicate or oversize) of those this run takes. */
  done: number;
  total: number;
  bytes: number;
  totalBytes: number;
}
