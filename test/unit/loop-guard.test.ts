import { describe, expect, it } from 'vitest';
import { loopVerdict } from '../../src/tickets/loop-guard.js';

const now = new Date('2026-11-24T10:00:00.000Z');
const HOUR = 3_600_000;
const ago = (ms: number) => new Date(now.getTime() - ms);

describe('loopVerdict', () => {
  it('counts the ticket about to be opened: a first ticket is count 1, no loop', () => {
    expect(loopVerdict([], now, HOUR, 3)).toEqual({ loop: false, count: 1 });
  });

  it('is no loop at exactly max tickets, and a loop at one more', () => {
    expect(loopVerdict([ago(1000), ago(2000)], now, HOUR, 3)).toEqual({ loop: false, count: 3 });
    expect(loopVerdict([ago(1000), ago(2000), ago(3000)], now, HOUR, 3)).toEqual({ loop: true, count: 4 });
  });

  it('counts a ticket exactly windowMs ago, not one a millisecond older', () => {
    expect(loopVerdict([ago(HOUR)], now, HOUR, 1)).toEqual({ loop: true, count: 2 });
    expect(loopVerdict([ago(HOUR + 1)], now, HOUR, 1)).toEqual({ loop: false, count: 1 });
  });

  it('ignores tickets opened before the window', () => {
    const old = [ago(2 * HOUR), ago(3 * HOUR), ago(5 * HOUR)];
    expect(loopVerdict([...old, ago(10)], now, HOUR, 10)).toEqual({ loop: false, count: 2 });
  });

  it('counts a ticket stamped after now (the clock stepped back)', () => {
    expect(loopVerdict([new Date(now.getTime() + 60_000)], now, HOUR, 1)).toEqual({ loop: true, count: 2 });
  });

  it('ignores unreadable dates', () => {
    expect(loopVerdict([new Date('not a date'), ago(5)], now, HOUR, 5)).toEqual({ loop: false, count: 2 });
  });

  it('with max 0 every new ticket is a probable loop', () => {
    expect(loopVerdict([], now, HOUR, 0)).toEqual({ loop: true, count: 1 });
  });
});
