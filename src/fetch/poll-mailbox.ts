import type { MailboxConfig } from '../config/types.js';
import { errorMessage, MailpollError } from '../errors.js';
import type { Logger } from '../log.js';
import { scrub } from '../log.js';
import type { ParsedMessage } from '../parse/types.js';
import type { MailSession, MailSource } from '../sources/mail-source.js';
import type { MailStore } from '../store/mail-store.js';
import { planOwedAcks, selectNew } from './plan.js';
import { emptySummary, type MailboxSummary } from './summary.js';

/** IMAP acknowledgements are sent in batches of this many committed messages. */
const ACK_BATCH = 50;

export interface PollDeps {
  store: MailStore;
  parse: (raw: Buffer) => Promise<ParsedMessage>;
  log: Logger;
}

/**
 * One mailbox, one session, the exactly-once protocol of DESIGN.md for each message:
 * fetch -> parse -> one transaction -> acknowledge on the server -> mark acknowledged.
 * Never throws: the outcome, failure included, is in the summary, and whatever was committed
 * before a failure stays committed (progress is per message, not per run).
 */
export async function pollMailbox(mailbox: MailboxConfig, source: MailSource, deps: PollDeps): Promise<MailboxSummary> {
  const started = Date.now();
  const summary = emptySummary(mailbox.name);
  const log = deps.log.child({ mailbox: mailbox.name });
  let session: MailSession | undefined;
  try {
    session = await source.open();
    await runSession(mailbox, session, deps, summary, log);
    session = undefined;
  } catch (err) {
    session?.abort();
    summary.ok = false;
    summary.error = scrub(errorMessage(err));
    summary.errorCode = err instanceof MailpollError ? err.code : 'UNEXPECTED';
    log.error({ code: summary.errorCode, err: scrub(errorMessage(err)) }, 'mailbox failed');
  }
  summary.durationMs = Date.now() - started;
  return summary;
}

async function runSession(mailbox: MailboxConfig, session: MailSession, deps: PollDeps, summary: MailboxSummary, log: Logger): Promise<void> {
  const { store } = deps;
  const name = mailbox.name;
  const listing = await session.list(mailbox.protocol === 'imap' ? store.cursor(name) : null);
  const needsAck = mailbox.after !== 'keep';
  // POP3 applies DELE only at a clean QUIT (RFC 1939 section 6): those are marked after close().
  const deferred: string[] = [];
  const acknowledge = async (ids: string[]) => {
    if (ids.length === 0) return;
    await session.acknowledge(ids);
    if (mailbox.protocol === 'pop3') deferred.push(...ids);
    else store.markAcknowledged(name, ids);
    summary.acknowledged += ids.length;
  };

  // Acknowledgements a crashed or cut-off earlier run still owes come first.
  const owed = store.unacknowledged(name);
  if (owed.length > 0) {
    const plan = planOwedAcks(owed, listing, mailbox.protocol);
    log.info({ owed: owed.length, unreachable: plan.unreachable.length }, 'completing acknowledgements from an earlier run');
    store.markAcknowledged(name, plan.unreachable);
    await acknowledge(plan.ack);
  }

  const known = store.knownServerIds(name, listing.candidates.map((c) => c.serverId));
  const { todo, fresh } = selectNew(listing.candidates, known, mailbox.maxMessages);
  summary.listed = fresh;
  if (fresh > todo.length) log.info({ fresh, cap: mailbox.maxMessages }, 'more new messages than maxMessages; the rest come next run');

  let batch: string[] = [];
  for (const candidate of todo) {
    if (candidate.size > mailbox.maxMessageBytes) {
      store.recordOversize(name, candidate.serverId, candidate.uid, listing.uidValidity);
      summary.oversize += 1;
      log.warn({ serverId: candidate.serverId, size: candidate.size, max: mailbox.maxMessageBytes }, 'message over maxMessageBytes left on the server');
      continue;
    }
    const raw = await session.fetch(candidate, mailbox.maxMessageBytes);
    summary.fetched += 1;
    summary.bytes += raw.length;
    const parsed = await deps.parse(raw);
    if (parsed.parseError !== undefined) log.warn({ serverId: candidate.serverId, parseError: parsed.parseError }, 'stored raw: message could not be parsed');
    const result = store.ingest({
      mailbox: name,
      serverId: candidate.serverId,
      uid: candidate.uid,
      uidValidity: listing.uidValidity,
      raw,
      parsed,
      acknowledged: !needsAck,
    });
    if (result.outcome === 'known') continue;
    if (result.outcome === 'stored') {
      summary.stored += 1;
      if (result.newTicket) summary.newTickets += 1;
    } else {
      summary.duplicates += 1;
    }
    log.debug({ serverId: candidate.serverId, outcome: result.outcome, ticket: result.ticketNumber }, 'message committed');
    if (needsAck) {
      batch.push(candidate.serverId);
      if (mailbox.protocol === 'pop3' || batch.length >= ACK_BATCH) {
        await acknowledge(batch);
        batch = [];
      }
    }
  }
  await acknowledge(batch);
  await session.close();
  store.markAcknowledged(name, deferred);
}
