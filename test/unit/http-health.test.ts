import { describe, expect, it } from 'vitest';
import { assessHealth, formatDuration, healthWindowMs } from '../../src/http/health.js';
import type { MailboxMetrics } from '../../src/store/metrics.js';

const MIN = 60_000;

function metrics(mailbox: string, m: Partial<MailboxMetrics> = {}): MailboxMetrics {
  return {
    mailbox, pollsTotal: 1, pollFailuresTotal: 0, messagesStoredTotal: 0, duplicatesTotal: 0, oversizeTotal: 0, quarantined: 0,
    bytesFetchedTotal: 0, lastSuccessAt: undefined, lastPollDurationMs: undefined, consecutiveFailures: 0, lastErrorCode: undefined, ...m,
  };
}

describe('the health window', () => {
  it('is max(3 × every, every + 5m) unless healthWindow is set', () => {
    expect(healthWindowMs({ everyMs: 5 * MIN, healthWindowMs: undefined })).toBe(15 * MIN);
    expect(healthWindowMs({ everyMs: 1 * MIN, healthWindowMs: undefined })).toBe(6 * MIN);
    expect(healthWindowMs({ everyMs: 10_000, healthWindowMs: undefined })).toBe(5 * MIN + 10_000);
    expect(healthWindowMs({ everyMs: 60 * MIN, healthWindowMs: undefined })).toBe(180 * MIN);
    expect(healthWindowMs({ everyMs: 5 * MIN, healthWindowMs: 2 * 3_600_000 })).toBe(2 * 3_600_000);
  });
});

describe('assessHealth', () => {
  const now = new Date('2026-03-01T12:00:00Z');
  const box = (name: string, everyMs = 5 * MIN) => ({ name, everyMs, healthWindowMs: undefined });
  const ago = (ms: number) => new Date(now.getTime() - ms);

  it('is healthy when every latest poll succeeded within its window', () => {
    const report = assessHealth([box('a'), box('b', 60 * MIN)], [metrics('a', { lastSuccessAt: ago(14 * MIN) }), metrics('b', { lastSuccessAt: ago(170 * MIN) })], now);
    expect(report.ok).toBe(true);
    expect(report.mailboxes).toEqual([
      { name: 'a', ok: true, lastSuccessAt: ago(14 * MIN).toISOString(), consecutiveFailures: 0, windowSeconds: 900, reason: null },
      { name: 'b', ok: true, lastSuccessAt: ago(170 * MIN).toISOString(), consecutiveFailures: 0, windowSeconds: 10_800, reason: null },
    ]);
  });

  it('names a mailbox whose latest poll failed, by its error code only, however recent its last success', () => {
    const report = assessHealth([box('a'), box('b')], [metrics('a', { lastSuccessAt: ago(MIN) }), metrics('b', { lastSuccessAt: ago(MIN), consecutiveFailures: 2, lastErrorCode: 'AUTH' })], now);
    expect(report.ok).toBe(false);
    expect(report.mailboxes[0]?.ok).toBe(true);
    expect(report.mailboxes[1]).toMatchObject({ name: 'b', ok: false, consecutiveFailures: 2, reason: 'last poll failed (AUTH), 2 failures in a row' });
  });

  it('is unhealthy when the last success is older than the window, or there was none', () => {
    const report = assessHealth([box('stale'), box('never'), box('unknown')], [metrics('stale', { lastSuccessAt: ago(16 * MIN) }), metrics('never', { pollsTotal: 0 })], now);
    expect(report.ok).toBe(false);
    expect(report.mailboxes.map((m) => m.reason)).toEqual([
      'no successful poll for 16m (allowed: 15m)',
      'no successful poll yet',
      'no successful poll yet',
    ]);
  });

  it('formats durations for people', () => {
    expect(formatDuration(42_000)).toBe('42s');
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(90_061_000)).toBe('1d 1h 1m');
    expect(formatDuration(3_600_000)).toBe('1h');
  });
});
