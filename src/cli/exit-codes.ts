/** Exit codes: cron and Task Scheduler act on these. */
export const EXIT = {
  /** Every polled mailbox was fine. */
  OK: 0,
  /** At least one mailbox failed (the others were still polled). */
  FAILED: 1,
  /** Bad usage or configuration: nothing was fetched. */
  USAGE: 2,
} as const;
