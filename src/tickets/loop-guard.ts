/**
 * Whether a sender who is about to open another ticket is probably caught in a mail loop (two
 * auto-responders answering each other, a bounce storm): that one, plus the tickets they opened
 * within `windowMs` up to `now`, makes more than `max`. `count` includes the one about to be
 * opened. A time after `now` still counts: it means the clock stepped back, and the ticket is
 * recent either way. Unreadable dates (NaN) are ignored.
 */
export function loopVerdict(openedAt: readonly Date[], now: Date, windowMs: number, max: number): { loop: boolean; count: number } {
  const since = now.getTime() - windowMs;
  let count = 1;
  for (const at of openedAt) {
    if (at.getTime() >= since) count++;
  }
  return { loop: count > max, count };
}
