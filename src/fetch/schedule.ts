/**
 * When is a mailbox due? Pure functions of its health record, its `every` and the time, so the
 * decisions are tested across a simulated clock with no server and no sleeping.
 */
export interface MailboxHealth {
  lastAttemptAt: Date | undefined;
  consecutiveFailures: number;
}

/** Backoff never waits longer than this (unless `every` itself is longer). */
export const MAX_BACKOFF_MS = 3_600_000;

/**
 * The wait after the last attempt: `every` while healthy; after failures it doubles per
 * consecutive failure (every, 2x, 4x, ...) up to an hour, so a dead mailbox is not hammered
 * but is still retried, and one success brings it back to `every`.
 */
export function waitAfterAttempt(everyMs: number, consecutiveFailures: number): number {
  if (consecutiveFailures <= 0) return everyMs;
  const backoff = everyMs * 2 ** Math.min(consecutiveFailures - 1, 30);
  return Math.max(everyMs, Math.min(backoff, MAX_BACKOFF_MS));
}

/** When the mailbox is next due; undefined when it was never polled (due at once). */
export function nextDueAt(health: MailboxHealth, everyMs: number): Date | undefined {
  if (health.lastAttemptAt === undefined) return undefined;
  return new Date(health.lastAttemptAt.getTime() + waitAfterAttempt(everyMs, health.consecutiveFailures));
}

/**
 * Due, with a little slack: cron fires on the minute and each run starts a few hundred
 * milliseconds later, so `every: 5m` measured to the millisecond would slip to 6 minutes.
 * The slack is a fifth of the interval, at most 30 seconds.
 */
export function isDue(health: MailboxHealth, everyMs: number, now: Date): boolean {
  const from = dueFrom(health, everyMs);
  return from === undefined || now.getTime() >= from.getTime();
}

/** The first moment isDue() answers true (next due time less the slack); undefined: due already. */
export function dueFrom(health: MailboxHealth, everyMs: number): Date | undefined {
  const due = nextDueAt(health, everyMs);
  if (due === undefined) return undefined;
  return new Date(due.getTime() - Math.min(30_000, everyMs / 5));
}
