import { dueFrom, isDue, type MailboxHealth } from '../fetch/schedule.js';
import type { MailboxSummary } from '../fetch/summary.js';

/**
 * The daemon's pure decisions: which mailboxes to poll on this turn of the loop, how long to sleep
 * before the next one, and how long an IDLE watcher waits before it reconnects. Functions of data
 * and a time passed in, so they are tested across a simulated clock with no server and no sleeping.
 */

/** Never sleep longer than this: a config-free safety net against a clock jump or a missed wakeup. */
export const MAX_SLEEP_MS = 30_000;

/** At least this long between two turns, whatever wakes the loop: the daemon never spins. */
export const MIN_TURN_MS = 1_000;

/**
 * How long a mailbox is left alone after another run (a cron `fetch`, a second daemon) held its
 * lease. That run records its own attempt, which normally pushes the next due time out anyway; the
 * hold-off covers a lease left by a crashed run, which expires only after LEASE_TTL_MS.
 */
export const LEASE_RETRY_MS = 10_000;

/** The first reconnect of an IDLE watcher waits this long; each failure doubles it... */
export const WATCHER_BACKOFF_MIN_MS = 1_000;
/** ...up to this. */
export const WATCHER_BACKOFF_MAX_MS = 60_000;

/** One mailbox as the planner sees it. */
export interface PlannedMailbox {
  name: string;
  everyMs: number;
  health: MailboxHealth;
}

/** What the daemon is doing and has been told, at the start of a turn. */
export interface DaemonState {
  /** Mailboxes this daemon is polling right now: never started twice. */
  running: ReadonlySet<string>;
  /**
   * Mailboxes known to have mail waiting: their IDLE watcher reported new mail since their last
   * poll started, or that poll stopped at its per-run cap with more listed.
   */
  woken: ReadonlySet<string>;
  /** Mailboxes not to be started before this time (ms since the epoch). */
  holdUntil: ReadonlyMap<string, number>;
}

export type StartReason = 'woken' | 'due';

export interface TurnPlan {
  /** Mailboxes to poll now, in this order (woken first, then the longest overdue). */
  start: { name: string; reason: StartReason }[];
  /**
   * How long to sleep before the next turn unless something wakes the loop earlier (new mail by
   * IDLE, a poll finishing, shutdown); within [MIN_TURN_MS, MAX_SLEEP_MS].
   */
  sleepMs: number;
}

/** The earliest time at which `isDue` says yes, in ms; undefined when the mailbox is due at once. */
export function dueTime(health: MailboxHealth, everyMs: number): number | undefined {
  return dueFrom(health, everyMs)?.getTime();
}

/**
 * Decides one turn of the daemon loop. At most `capacity` polls are started (the concurrency
 * limit minus the polls already running). A woken mailbox goes first: mail is known to be waiting
 * there. A mailbox that is running, or held off, is never started; a woken one that cannot start
 * yet stays woken (the caller keeps it in `woken`) and is started on a later turn.
 */
export function planTurn(mailboxes: readonly PlannedMailbox[], state: DaemonState, now: number, capacity: number): TurnPlan {
  const at = new Date(now);
  const startable = mailboxes.filter((m) => !state.running.has(m.name) && (state.holdUntil.get(m.name) ?? 0) <= now);
  const woken = startable.filter((m) => state.woken.has(m.name));
  const due = startable
    .filter((m) => !state.woken.has(m.name) && isDue(m.health, m.everyMs, at))
    .sort((a, b) => (dueTime(a.health, a.everyMs) ?? -Infinity) - (dueTime(b.health, b.everyMs) ?? -Infinity));
  const start = [
    ...woken.map((m) => ({ name: m.name, reason: 'woken' as const })),
    ...due.map((m) => ({ name: m.name, reason: 'due' as const })),
  ].slice(0, Math.max(0, capacity));

  const started = new Set(start.map((s) => s.name));
  let wakeAt = now + MAX_SLEEP_MS;
  for (const m of mailboxes) {
    // A running mailbox (or one started now) wakes the loop when its poll ends; so does a woken or
    // due mailbox left over for lack of capacity, since capacity comes back only when a poll ends.
    if (state.running.has(m.name) || started.has(m.name)) continue;
    const held = state.holdUntil.get(m.name) ?? 0;
    if (held > now) {
      wakeAt = Math.min(wakeAt, state.woken.has(m.name) ? held : Math.max(held, dueTime(m.health, m.everyMs) ?? held));
      continue;
    }
    if (state.woken.has(m.name) || isDue(m.health, m.everyMs, at)) continue;
    wakeAt = Math.min(wakeAt, dueTime(m.health, m.everyMs) ?? now);
  }
  return { start, sleepMs: clampSleep(wakeAt - now) };
}

/**
 * Whether a finished poll stopped at its per-run cap (maxMessages, maxBytes) with new mail still
 * listed. A cron run leaves the rest to the next tick; the daemon polls again at once instead of
 * waiting `every`. Only after progress (something fetched), so a message that is listed but never
 * taken cannot keep a mailbox polling in a loop.
 */
export function leftBacklog(s: Pick<MailboxSummary, 'ok' | 'listed' | 'fetched' | 'oversize'>): boolean {
  return s.ok && s.fetched > 0 && s.listed > s.fetched + s.oversize;
}

/** A sleep kept within [MIN_TURN_MS, MAX_SLEEP_MS]. */
export function clampSleep(ms: number): number {
  return Math.min(MAX_SLEEP_MS, Math.max(MIN_TURN_MS, Math.ceil(ms)));
}

/**
 * How long an IDLE watcher waits before reconnecting after its `failures`-th consecutive failure
 * (1 for the first): 1 s, 2 s, 4 s, ... up to a minute. A server restart is over in seconds and is
 * noticed quickly; a server that stays down is not hammered. Reset by a session that reached IDLE.
 */
export function watcherBackoff(failures: number): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 30);
  return Math.min(WATCHER_BACKOFF_MAX_MS, WATCHER_BACKOFF_MIN_MS * 2 ** exponent);
}
