import type { MailboxMetrics } from '../store/metrics.js';

/**
 * Is mail flowing? A mailbox is healthy when its latest poll succeeded and that success is no
 * older than its health window. Pure: a function of the database's record and a time passed in.
 */

/** The slack added to `every` in the default window: a cron tick or two late is not an outage. */
export const HEALTH_GRACE_MS = 5 * 60_000;

/**
 * The window after the last success within which a mailbox is still healthy: its `healthWindow`,
 * else max(3 × every, every + 5m). With every: 5m that is 15 minutes, with every: 1m 6 minutes,
 * with every: 1h 3 hours: two polls may be missed (a slow run, a skipped cron tick, a lease held
 * by another run) before /health says so, but not three.
 */
export function healthWindowMs(mailbox: { everyMs: number; healthWindowMs: number | undefined }): number {
  return mailbox.healthWindowMs ?? Math.max(3 * mailbox.everyMs, mailbox.everyMs + HEALTH_GRACE_MS);
}

export interface MailboxHealthReport {
  name: string;
  ok: boolean;
  /** ISO time of the last successful poll; null when there was none. */
  lastSuccessAt: string | null;
  consecutiveFailures: number;
  /** The window this mailbox is judged by, in seconds. */
  windowSeconds: number;
  /** Why it is not healthy, null when it is. Only error codes, never error texts (they may quote a server). */
  reason: string | null;
}

export interface HealthReport {
  ok: boolean;
  mailboxes: MailboxHealthReport[];
}

export function assessHealth(
  mailboxes: readonly { name: string; everyMs: number; healthWindowMs: number | undefined }[],
  metrics: readonly MailboxMetrics[],
  now: Date,
): HealthReport {
  const byName = new Map(metrics.map((m) => [m.mailbox, m]));
  const reports = mailboxes.map((mailbox): MailboxHealthReport => {
    const m = byName.get(mailbox.name);
    const windowMs = healthWindowMs(mailbox);
    const lastSuccessAt = m?.lastSuccessAt;
    const failures = m?.consecutiveFailures ?? 0;
    let reason: string | null = null;
    if (failures > 0) {
      reason = `last poll failed (${m?.lastErrorCode ?? 'ERROR'}), ${failures} failure${failures === 1 ? '' : 's'} in a row`;
    } else if (lastSuccessAt === undefined) {
      reason = 'no successful poll yet';
    } else if (now.getTime() - lastSuccessAt.getTime() > windowMs) {
      reason = `no successful poll for ${formatDuration(now.getTime() - lastSuccessAt.getTime())} (allowed: ${formatDuration(windowMs)})`;
    }
    return {
      name: mailbox.name,
      ok: reason === null,
      lastSuccessAt: lastSuccessAt?.toISOString() ?? null,
      consecutiveFailures: failures,
      windowSeconds: Math.round(windowMs / 1000),
      reason,
    };
  });
  return { ok: reports.every((r) => r.ok), mailboxes: reports };
}

/** 90061000 -> "1d 1h 1m", 42000 -> "42s": for people reading /health. */
export function formatDuration(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.slice(0, 3).join(' ');
}
