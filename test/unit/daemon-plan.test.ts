import { describe, expect, it } from 'vitest';
import {
  clampSleep,
  dueTime,
  leftBacklog,
  LEASE_RETRY_MS,
  MAX_SLEEP_MS,
  MIN_TURN_MS,
  planTurn,
  watcherBackoff,
  type DaemonState,
  type PlannedMailbox,
} from '../../src/daemon/plan.js';
import { isDue, type MailboxHealth } from '../../src/fetch/schedule.js';

const SEC = 1_000;
const MIN = 60 * SEC;
const T0 = Date.parse('2026-03-01T12:00:00Z');

function health(lastAttemptAt: number | undefined, consecutiveFailures = 0): MailboxHealth {
  return { lastAttemptAt: lastAttemptAt === undefined ? undefined : new Date(lastAttemptAt), consecutiveFailures };
}

function mailbox(name: string, everyMs: number, h: MailboxHealth): PlannedMailbox {
  return { name, everyMs, health: h };
}

function state(partial: Partial<{ running: string[]; woken: string[]; holdUntil: [string, number][] }> = {}): DaemonState {
  return {
    running: new Set(partial.running ?? []),
    woken: new Set(partial.woken ?? []),
    holdUntil: new Map(partial.holdUntil ?? []),
  };
}

const names = (plan: ReturnType<typeof planTurn>) => plan.start.map((s) => s.name);

describe('which mailboxes a turn starts', () => {
  it('starts every mailbox never polled, and none that polled recently', () => {
    const plan = planTurn(
      [mailbox('new', 5 * MIN, health(undefined)), mailbox('fresh', 5 * MIN, health(T0 - 1 * MIN))],
      state(),
      T0,
      4,
    );
    expect(plan.start).toEqual([{ name: 'new', reason: 'due' }]);
  });

  it('follows each mailbox on its own every across a simulated hour', () => {
    // Simulate the loop: a started poll is recorded as an attempt at that moment.
    const every = { fast: 10 * MIN, slow: 30 * MIN };
    const last = new Map<string, number>();
    const polls: Record<string, number[]> = { fast: [], slow: [] };
    let now = T0;
    while (now < T0 + 60 * MIN) {
      const boxes = Object.entries(every).map(([name, ms]) => mailbox(name, ms, health(last.get(name))));
      const plan = planTurn(boxes, state(), now, 4);
      for (const { name } of plan.start) {
        last.set(name, now);
        polls[name]?.push((now - T0) / MIN);
      }
      expect(plan.sleepMs).toBeGreaterThanOrEqual(MIN_TURN_MS);
      expect(plan.sleepMs).toBeLessThanOrEqual(MAX_SLEEP_MS);
      now += plan.sleepMs;
    }
    // isDue's slack (a fifth of every, at most 30 s) lets a poll start that much early.
    expect(polls.fast).toEqual([0, 9.5, 19, 28.5, 38, 47.5, 57]);
    expect(polls.slow).toEqual([0, 29.5, 59]);
  });

  it('backs off a failing mailbox exactly as a cron fetch would', () => {
    const m = mailbox('failing', 5 * MIN, health(T0, 3)); // next due after 20 min
    expect(names(planTurn([m], state(), T0 + 19 * MIN, 4))).toEqual([]);
    expect(names(planTurn([m], state(), T0 + 20 * MIN, 4))).toEqual(['failing']);
  });

  it('never starts a mailbox this daemon is already polling, even when due or woken', () => {
    const m = mailbox('busy', 5 * MIN, health(undefined));
    expect(planTurn([m], state({ running: ['busy'], woken: ['busy'] }), T0, 4).start).toEqual([]);
  });

  it('leaves a mailbox alone while it is held off after another run held its lease', () => {
    const m = mailbox('leased', 5 * MIN, health(T0 - 10 * MIN));
    const held = state({ holdUntil: [['leased', T0 + LEASE_RETRY_MS]] });
    expect(planTurn([m], held, T0, 4).start).toEqual([]);
    expect(planTurn([m], held, T0 + LEASE_RETRY_MS, 4).start).toEqual([{ name: 'leased', reason: 'due' }]);
  });

  it('starts no more than the free capacity, the longest overdue first', () => {
    const boxes = [
      mailbox('a', 5 * MIN, health(T0 - 6 * MIN)),
      mailbox('b', 5 * MIN, health(T0 - 20 * MIN)),
      mailbox('c', 5 * MIN, health(undefined)),
      mailbox('d', 5 * MIN, health(T0 - 8 * MIN)),
    ];
    expect(names(planTurn(boxes, state(), T0, 2))).toEqual(['c', 'b']);
    expect(names(planTurn(boxes, state(), T0, 0))).toEqual([]);
  });
});

describe('IDLE wakeups', () => {
  it('a woken mailbox is started at once although its every is an hour away', () => {
    const m = mailbox('idle', 60 * MIN, health(T0 - 1 * MIN));
    expect(planTurn([m], state(), T0, 4).start).toEqual([]);
    expect(planTurn([m], state({ woken: ['idle'] }), T0, 4).start).toEqual([{ name: 'idle', reason: 'woken' }]);
  });

  it('woken mailboxes go before merely due ones when capacity is short', () => {
    const boxes = [mailbox('due', 5 * MIN, health(undefined)), mailbox('idle', 60 * MIN, health(T0 - 1 * MIN))];
    expect(planTurn(boxes, state({ woken: ['idle'] }), T0, 1).start).toEqual([{ name: 'idle', reason: 'woken' }]);
  });

  it('a woken mailbox held off by another run is started when the hold ends, and the loop wakes for it', () => {
    const m = mailbox('idle', 60 * MIN, health(T0 - 1 * MIN));
    const s = state({ woken: ['idle'], holdUntil: [['idle', T0 + 4 * SEC]] });
    const plan = planTurn([m], s, T0, 4);
    expect(plan.start).toEqual([]);
    expect(plan.sleepMs).toBe(4 * SEC);
    expect(planTurn([m], s, T0 + 4 * SEC, 4).start).toEqual([{ name: 'idle', reason: 'woken' }]);
  });
});

describe('how long the loop sleeps', () => {
  it('until the earliest next due time', () => {
    const boxes = [
      mailbox('a', 5 * MIN, health(T0 - 4 * MIN - 50 * SEC)), // due in 10 s - 30 s slack: already due
      mailbox('b', 10 * MIN, health(T0 - 9 * MIN - 20 * SEC)), // due at +40 s - 30 s slack = +10 s
      mailbox('c', 1 * MIN, health(T0 - 40 * SEC)), // due at +20 s - 12 s slack = +8 s
    ];
    const plan = planTurn(boxes, state({ running: ['a'] }), T0, 3);
    expect(plan.start).toEqual([]);
    expect(plan.sleepMs).toBe(8 * SEC);
  });

  it('at most MAX_SLEEP_MS, however far the next due time', () => {
    expect(planTurn([mailbox('hourly', 60 * MIN, health(T0))], state(), T0, 4).sleepMs).toBe(MAX_SLEEP_MS);
    expect(planTurn([], state(), T0, 4).sleepMs).toBe(MAX_SLEEP_MS);
  });

  it('at least MIN_TURN_MS, even when something is due right now: the loop never spins', () => {
    const boxes = [mailbox('a', 5 * MIN, health(undefined)), mailbox('b', 5 * MIN, health(undefined))];
    // Only one fits; the other one waits for a poll to end (which wakes the loop), not for a timer.
    const plan = planTurn(boxes, state(), T0, 1);
    expect(plan.start).toHaveLength(1);
    expect(plan.sleepMs).toBe(MAX_SLEEP_MS);
    const soon = planTurn([mailbox('c', 10 * SEC, health(T0 - 8 * SEC + 100))], state(), T0, 4);
    expect(soon.start).toEqual([]);
    expect(soon.sleepMs).toBe(MIN_TURN_MS);
  });

  it('clampSleep keeps any wait within bounds', () => {
    expect([-5, 0, 10, 1_500, 29_999.2, 45_000].map(clampSleep)).toEqual([MIN_TURN_MS, MIN_TURN_MS, MIN_TURN_MS, 1_500, 30_000, MAX_SLEEP_MS]);
  });

  it('dueTime is the first millisecond at which isDue says yes', () => {
    for (const [every, failures] of [[10 * SEC, 0], [5 * MIN, 0], [5 * MIN, 2], [2 * 60 * MIN, 0], [60 * MIN, 5]] as const) {
      const h = health(T0, failures);
      const due = dueTime(h, every);
      expect(due).toBeDefined();
      expect(isDue(h, every, new Date(due as number))).toBe(true);
      expect(isDue(h, every, new Date((due as number) - 1))).toBe(false);
    }
    expect(dueTime(health(undefined), 5 * MIN)).toBeUndefined();
  });
});

describe('a backlog left by the per-run cap', () => {
  const summary = (o: Partial<{ ok: boolean; listed: number; fetched: number; oversize: number }>) => ({ ok: true, listed: 0, fetched: 0, oversize: 0, ...o });

  it('is polled again at once when the cap stopped a poll that made progress', () => {
    expect(leftBacklog(summary({ listed: 300, fetched: 50 }))).toBe(true);
  });

  it('is not when everything listed was taken or left over as oversize', () => {
    expect(leftBacklog(summary({ listed: 50, fetched: 50 }))).toBe(false);
    expect(leftBacklog(summary({ listed: 52, fetched: 50, oversize: 2 }))).toBe(false);
    expect(leftBacklog(summary({}))).toBe(false);
  });

  it('is not after a failure or a poll that fetched nothing, so nothing loops', () => {
    expect(leftBacklog(summary({ ok: false, listed: 300, fetched: 20 }))).toBe(false);
    expect(leftBacklog(summary({ listed: 300, fetched: 0 }))).toBe(false);
  });
});

describe('IDLE watcher reconnect backoff', () => {
  it('1 s doubling to a minute, then stays there', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 100].map(watcherBackoff)).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60].map((s) => s * SEC));
  });
});
