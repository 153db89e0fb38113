import type { Config } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { registerSecret, scrub, type Logger } from '../log.js';
import type { Db } from '../store/database.js';
import { readMailboxMetrics } from '../store/metrics.js';
import type { MailboxSummary } from './summary.js';

/**
 * Dead-man pings in the style of healthchecks.io: after a run, a request to the success URL when
 * mail is flowing, to the failure URL (default: the success URL plus `/fail`) when it is not. The
 * service raises the alarm on a failure ping, and also when pings stop coming at all.
 *
 * The verdict is the database's, not only the run's: success when no configured mailbox's latest
 * poll failed. A cron run that polls only the mailboxes due on that tick would otherwise send
 * "success" for mailbox B a minute after "fail" for mailbox A, and the check would flap between
 * up and down while A stays broken (a failing mailbox backs off for up to an hour).
 *
 * A ping never fails a run and never holds it up beyond the configured timeout (default 5 s). The
 * URLs are treated as secrets (a healthchecks URL embeds the check's UUID; anyone holding it can
 * send pings): registered for scrubbing and never logged; a log line names only the host.
 */
export type PingSettings = NonNullable<Config['pings']>;
export type PingKind = 'success' | 'failure';
export type PingResult = { answered: true; status: number } | { answered: false; reason: string };

export interface RunVerdict {
  kind: PingKind;
  /** Sent as the request body (healthchecks.io shows it with the ping): mailbox names and error codes, no error texts. */
  body: string;
}

/** The ping for a run: `summaries` of the mailboxes it polled, `failing` every configured mailbox whose latest poll failed. */
export function runVerdict(summaries: readonly MailboxSummary[], failing: readonly { mailbox: string; code: string }[]): RunVerdict {
  const polled = summaries.filter((s) => s.skipped === undefined);
  const kind: PingKind = polled.every((s) => s.ok) && failing.length === 0 ? 'success' : 'failure';
  const lines = [`mailpoll: ${kind}`];
  if (polled.length > 0) {
    lines.push(
      `polled: ${polled.map((s) => (s.ok ? `${s.mailbox} ok (stored ${s.stored})` : `${s.mailbox} FAILED (${safeCode(s.errorCode)})`)).join(', ')}`,
    );
  }
  if (failing.length > 0) lines.push(`failing: ${failing.map((f) => `${f.mailbox} (${safeCode(f.code)})`).join(', ')}`);
  return { kind, body: `${lines.join('\n')}\n` };
}

/**
 * Whether the daemon sends a ping now: always when the verdict changed since the last one sent,
 * else at most once per `minIntervalMs` (a daemon polling many mailboxes would otherwise ping
 * after every poll).
 */
export function shouldPing(last: { kind: PingKind; at: number } | undefined, kind: PingKind, now: number, minIntervalMs: number): boolean {
  return last === undefined || last.kind !== kind || now - last.at >= minIntervalMs;
}

/** The daemon pings at most this often while nothing changes. */
export const DAEMON_PING_INTERVAL_MS = 60_000;

/** Registers the ping URLs (and their paths, which hold the check's id) as secrets. */
export function registerPingSecrets(settings: PingSettings): void {
  for (const href of [settings.successUrl, settings.failureUrl]) {
    registerSecret(href);
    try {
      const url = new URL(href);
      registerSecret(url.href);
      const rest = `${url.pathname}${url.search}`;
      if (rest.length >= 8) registerSecret(rest);
    } catch {
      // validated when the config was loaded
    }
  }
}

/**
 * One POST to `url` with `body`; resolves (never rejects) when it is answered, refused or after
 * `timeoutMs`, whichever comes first. No keep-alive, so nothing outlives the request; redirects
 * are not followed.
 */
export async function sendPing(href: string, body: string, timeoutMs: number): Promise<PingResult> {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return { answered: false, reason: 'not a URL' };
  }
  const { request } = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise<PingResult>((resolve) => {
    let settled = false;
    const finish = (result: PingResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ answered: false, reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'user-agent': 'mailpoll' },
      },
      (res) => {
        res.resume();
        finish({ answered: true, status: res.statusCode ?? 0 });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => finish({ answered: false, reason: err.code ?? errorMessage(err) }));
    req.end(body);
  });
}

/** Sends the verdict's ping and logs how it went (host only). Never throws. */
export async function ping(settings: PingSettings, verdict: RunVerdict, log: Logger): Promise<void> {
  const href = verdict.kind === 'success' ? settings.successUrl : settings.failureUrl;
  let host = '?';
  try {
    host = new URL(href).host;
  } catch {
    // validated when the config was loaded
  }
  const started = Date.now();
  try {
    const result = await sendPing(href, verdict.body, settings.timeoutMs);
    const fields = { ping: verdict.kind, host, ms: Date.now() - started };
    if (!result.answered) log.warn({ ...fields, reason: scrub(result.reason) }, 'dead-man ping not delivered; the run itself is not affected');
    else if (result.status < 200 || result.status >= 300) log.warn({ ...fields, status: result.status }, 'dead-man ping refused; check the pings URLs');
    else log.debug({ ...fields, status: result.status }, 'dead-man ping sent');
  } catch (err) {
    log.warn({ ping: verdict.kind, host, reason: scrub(errorMessage(err)) }, 'dead-man ping not delivered; the run itself is not affected');
  }
}

/** The mailboxes of the config whose latest poll failed, with their error codes, from the database. */
export function failingMailboxes(config: Config, db: Db): { mailbox: string; code: string }[] {
  return readMailboxMetrics(db, config.mailboxes.map((m) => m.name))
    .filter((m) => m.consecutiveFailures > 0)
    .map((m) => ({ mailbox: m.mailbox, code: m.lastErrorCode ?? 'ERROR' }));
}

/** After a `fetch` run that polled something: one ping, awaited (bounded by the timeout). */
export async function pingAfterRun(config: Config, db: Db, summaries: readonly MailboxSummary[], log: Logger): Promise<void> {
  if (config.pings === undefined || summaries.every((s) => s.skipped !== undefined)) return;
  registerPingSecrets(config.pings);
  await ping(config.pings, runVerdict(summaries, failingMailboxes(config, db)), log);
}

/**
 * The daemon's pings: after each poll (its own, or a run the HTTP trigger started), without
 * waiting for the answer; see shouldPing for how often. `settle` waits for pings in flight
 * (each bounded by the timeout) before the daemon exits.
 */
export class DaemonPinger {
  private last: { kind: PingKind; at: number } | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly config: Config & { pings: PingSettings },
    private readonly db: Db,
    private readonly log: Logger,
    private readonly minIntervalMs = DAEMON_PING_INTERVAL_MS,
  ) {
    registerPingSecrets(config.pings);
  }

  afterRun(summaries: readonly MailboxSummary[]): void {
    if (summaries.every((s) => s.skipped !== undefined)) return;
    let verdict: RunVerdict;
    try {
      verdict = runVerdict(summaries, failingMailboxes(this.config, this.db));
    } catch (err) {
      this.log.warn({ reason: scrub(errorMessage(err)) }, 'dead-man ping skipped: cannot read the mailbox states');
      return;
    }
    const now = Date.now();
    if (!shouldPing(this.last, verdict.kind, now, this.minIntervalMs)) return;
    this.last = { kind: verdict.kind, at: now };
    const sent: Promise<void> = ping(this.config.pings, verdict, this.log).finally(() => this.inFlight.delete(sent));
    this.inFlight.add(sent);
  }

  async settle(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }
}

function safeCode(code: string | undefined): string {
  return code !== undefined && /^[A-Z][A-Z0-9_]{0,31}$/.test(code) ? code : 'ERROR';
}
