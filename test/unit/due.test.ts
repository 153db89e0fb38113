import { describe, expect, it } from 'vitest';
import { isDue, MAX_BACKOFF_MS, nextDueAt, waitAfterAttempt } from '../../src/fetch/schedule.js';

const MIN = 60_000;
const at = (iso: string) => new Date(iso);

describe('due decisions across a simulated clock', () => {
  it('a mailbox never polled is due at once', () => {
    expect(isDue({ lastAttemptAt: undefined, consecutiveFailures: 0 }, 5 * MIN, at('2026-01-01T00:00:00Z'))).toBe(true);
  });

  it('every 5m under a cron that fires each minute: due on the 5th tick, not before, despite start-up jitter', () => {
    const every = 5 * MIN;
    // The last run started 700 ms after its cron tick.
    const health = { lastAttemptAt: at('2026-01-01T10:00:00.700Z'), consecutiveFailures: 0 };
    const ticks = [1, 2, 3, 4, 5].map((m) => at(`2026-01-01T10:0${m}:00.300Z`));
    expect(ticks.map((t) => isDue(health, every, t))).toEqual([false, false, false, false, true]);
  });

  it('backoff doubles per consecutive failure, is capped at an hour, and resets after a success', () => {
    const every = 5 * MIN;
    expect([0, 1, 2, 3, 4, 5, 6, 20].map((f) => waitAfterAttempt(every, f) / MIN)).toEqual([5, 5, 10, 20, 40, 60, 60, 60]);
    const last = at('2026-01-01T10:00:00Z');
    expect(nextDueAt({ lastAttemptAt: last, consecutiveFailures: 3 }, every)?.toISOString()).toBe('2026-01-01T10:20:00.000Z');
    expect(isDue({ lastAttemptAt: last, consecutiveFailures: 3 }, every, at('2026-01-01T10:10:00Z'))).toBe(false);
    expect(isDue({ lastAttemptAt: last, consecutiveFailures: 0 }, every, at('2026-01-01T10:05:00Z'))).toBe(true);
  });

  it('never backs off to less than every, even when every is longer than the cap', () => {
    expect(waitAfterAttempt(2 * MAX_BACKOFF_MS, 4)).toBe(2 * MAX_BACKOFF_MS);
    expect(waitAfterAttempt(30_000, 1)).toBe(30_000);
  });
});
