import type { Analyser } from '../parse/analyse-pool.js';
import type { Config, MailboxConfig } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { runFetch, storeRules } from '../fetch/run-fetch.js';
import type { MailboxSummary } from '../fetch/summary.js';
import { scrub, type Logger } from '../log.js';
import type { Db } from '../store/database.js';
import { readHealth } from '../store/mailbox-state.js';
import { IdleWatcher, type WakeReason } from './idle-watcher.js';
import { leftBacklog, LEASE_RETRY_MS, MIN_TURN_MS, planTurn, type StartReason } from './plan.js';

/** After a turn or a poll failed in a way runFetch does not contain (a database error), wait this long. */
const UNEXPECTED_RETRY_MS = 5_000;

export interface DaemonOptions {
  /** Mailboxes polled at once. */
  concurrency: number;
  /**
   * Aborted to stop: no new poll starts, each poll in flight finishes its message in hand, commits,
   * acknowledges and closes, the IDLE watchers close, then runDaemon resolves.
   */
  signal: AbortSignal;
  /** Lease owner id; runFetch's per-process id by default. */
  owner?: string;
  /** Called after each poll that ran (not one skipped for a lease held elsewhere): the dead-man ping. */
  onPoll?: (summary: MailboxSummary) => void;
  /** Where messages are parsed; shared across polls. */
  analyser?: Analyser;
}

/**
 * `mailpoll daemon`: polls each mailbox on its own `every` until `signal` is aborted, and at once
 * when an IDLE watcher reports new mail. Every poll goes through runFetch, under the same per-mailbox
 * lease as a cron `fetch`, so both can share one database: a mailbox leased by another run is
 * skipped and tried again later. Each poll of a mailbox is independent, so one slow mailbox never
 * delays another's turn or its IDLE wakeup. What to start and how long to sleep is plan.ts.
 */
export async function runDaemon(config: Config, db: Db, log: Logger, options: DaemonOptions): Promise<void> {
  const { signal } = options;
  const byName = new Map(config.mailboxes.map((m) => [m.name, m]));
  const running = new Map<string, Promise<void>>();
  const rules = storeRules(config);
  const woken = new Set<string>();
  const holdUntil = new Map<string, number>();
  const wakeup = new Wakeup();

  const poll = async (mailbox: MailboxConfig, reason: StartReason): Promise<void> => {
    const name = mailbox.name;
    log.info({ mailbox: name, reason }, reason === 'woken' ? 'polling: new mail waiting' : 'polling: due');
    try {
      const [summary] = await runFetch([mailbox], db, { concurrency: 1, signal, owner: options.owner, rules, analyser: options.analyser }, log);
      if (summary?.skipped !== undefined) {
        // runFetch logged who holds it. A woken mailbox stays woken: the new mail is still waiting.
        holdUntil.set(name, Date.now() + LEASE_RETRY_MS);
        if (reason === 'woken') woken.add(name);
      } else if (summary !== undefined) {
        logSummary(log, summary);
        options.onPoll?.(summary);
        if (!signal.aborted && leftBacklog(summary)) {
          log.info({ mailbox: name }, 'more mail waiting than one poll takes (maxMessages, maxBytes); polling again');
          woken.add(name);
        }
      }
    } catch (err) {
      holdUntil.set(name, Date.now() + UNEXPECTED_RETRY_MS);
      if (reason === 'woken') woken.add(name);
      log.error({ mailbox: name, err: scrub(errorMessage(err)) }, 'poll failed unexpectedly; the mailbox is tried again later');
    } finally {
      running.delete(name);
      wakeup.fire();
    }
  };

  const watchers = config.mailboxes
    .filter((m) => m.protocol === 'imap' && m.idle)
    .map(
      (m) =>
        new IdleWatcher({
          mailbox: m,
          db,
          log,
          onWake: (reason: WakeReason) => {
            if (signal.aborted) return;
            if (reason === 'new-mail') log.info({ mailbox: m.name }, 'IDLE: the server reported new mail');
            woken.add(m.name);
            wakeup.fire();
          },
        }),
    );

  log.info(
    { mailboxes: config.mailboxes.length, idle: watchers.length, concurrency: options.concurrency, database: config.database },
    'daemon started',
  );
  for (const w of watchers) w.start();
  try {
    while (!signal.aborted) {
      const turnAt = Date.now();
      let sleepMs = UNEXPECTED_RETRY_MS;
      try {
        const mailboxes = config.mailboxes.map((m) => ({ name: m.name, everyMs: m.everyMs, health: readHealth(db, m.name) }));
        const plan = planTurn(mailboxes, { running: new Set(running.keys()), woken, holdUntil }, turnAt, options.concurrency - running.size);
        for (const { name, reason } of plan.start) {
          const mailbox = byName.get(name);
          if (mailbox === undefined) continue;
          woken.delete(name);
          holdUntil.delete(name);
          running.set(name, poll(mailbox, reason));
        }
        sleepMs = plan.sleepMs;
        log.debug({ started: plan.start.map((s) => s.name), running: [...running.keys()], sleepMs }, 'daemon turn');
      } catch (err) {
        log.error({ err: scrub(errorMessage(err)) }, 'daemon turn failed; trying again shortly');
      }
      await wakeup.wait(sleepMs, signal);
      // Whatever woke the loop, turns stay at least MIN_TURN_MS apart: it never spins.
      const rest = turnAt + MIN_TURN_MS - Date.now();
      if (rest > 0) await delay(rest, signal);
    }
  } finally {
    log.info('shutting down: no new polls start');
    await Promise.all([
      (async () => {
        if (watchers.length === 0) return;
        log.info({ watchers: watchers.length }, 'shutting down: closing IDLE watchers');
        await Promise.all(watchers.map((w) => w.stop()));
        log.info('IDLE watchers closed');
      })(),
      (async () => {
        if (running.size === 0) return;
        log.info(
          { mailboxes: [...running.keys()] },
          'shutting down: waiting for polls in flight (each finishes its message in hand, commits, acknowledges, closes)',
        );
        await Promise.allSettled([...running.values()]);
        log.info('polls in flight finished');
      })(),
    ]);
  }
}

function logSummary(log: Logger, s: MailboxSummary): void {
  const fields = {
    mailbox: s.mailbox,
    ok: s.ok,
    listed: s.listed,
    fetched: s.fetched,
    stored: s.stored,
    duplicates: s.duplicates,
    newTickets: s.newTickets,
    acknowledged: s.acknowledged,
    oversize: s.oversize,
    messageFailures: s.messageFailures,
    quarantined: s.quarantined,
    durationMs: s.durationMs,
    ...(s.ok ? {} : { code: s.errorCode, err: s.error }),
  };
  if (s.ok) log.info(fields, 'poll finished');
  else log.warn(fields, 'poll finished with a failure; the mailbox backs off and is retried');
}

/**
 * What the loop sleeps on: a timer, or a wake from an IDLE watcher or a finished poll. A wake that
 * comes while the loop is busy is kept, so the next wait returns at once instead of missing it.
 */
class Wakeup {
  private pending = false;
  private wake: (() => void) | undefined;

  fire(): void {
    if (this.wake !== undefined) this.wake();
    else this.pending = true;
  }

  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }
}

/** Resolves after `ms`, or at once when `signal` is aborted. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Wakeup().wait(ms, signal);
}
