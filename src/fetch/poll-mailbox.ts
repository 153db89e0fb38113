import type { MailboxConfig } from '../config/types.js';
import { errorMessage, MailpollError, ProtocolError } from '../errors.js';
import type { Logger } from '../log.js';
import { scrub } from '../log.js';
import { classify } from '../parse/classify.js';
import type { ParsedMessage } from '../parse/types.js';
import type { Candidate, Listing, MailSession, MailSource } from '../sources/mail-source.js';
import type { MailStore } from '../store/mail-store.js';
import { planOwedAcks, selectNew } from './plan.js';
import { emptySummary, type MailboxSummary } from './summary.js';

/** IMAP acknowledgements are sent in batches of this many committed messages. */
const ACK_BATCH = 50;

/** A message that failed this many times (across runs) is quarantined instead of retried. */
export const MAX_MESSAGE_ATTEMPTS = 3;
/** ...unless each failure was the connection breaking while this message was in transfer. */
export const MAX_CONNECTION_ATTEMPTS = 10;

/** Database failures that say nothing about the message at hand: never counted against it. */
const ENVIRONMENTAL_SQLITE = /^SQLITE_(FULL|IOERR|BUSY|LOCKED|READONLY|CANTOPEN|NOMEM|CORRUPT|NOTADB)/;

export interface PollDeps {
  store: MailStore;
  parse: (raw: Buffer) => Promise<ParsedMessage>;
  log: Logger;
  /** Aborted on shutdown: the message in hand is finished and committed, then the session ends. */
  signal?: AbortSignal;
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
    if (summary.messageFailures + summary.quarantined > 0) {
      summary.ok = false;
      summary.errorCode = 'MESSAGE';
      summary.error = `${summary.messageFailures} message(s) failed and will be retried, ${summary.quarantined} quarantined (see mailpoll status)`;
    }
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

/**
 * Moves the cursor over the longest run of listed messages that all have a receipt, so messages
 * stored while an earlier one was retried, then quarantined, are not listed again and again.
 */
function catchUpCursor(store: MailStore, mailbox: string, listing: Listing): void {
  const handled = store.knownServerIds(mailbox, listing.candidates.map((c) => c.serverId));
  let top: number | undefined;
  for (const c of listing.candidates) {
    if (!handled.has(c.serverId)) break;
    top = c.uid;
  }
  if (top !== undefined) store.advanceCursor(mailbox, listing.uidValidity, top);
}

/**
 * A message over maxMessageBytes is never dropped and never acted on at the server: with
 * `oversize: skip` it is left there and reported once; with `headers` its header block is stored
 * on a ticket, marked headers_only, so someone can go and look.
 */
async function handleOversize(
  mailbox: MailboxConfig,
  session: MailSession,
  deps: PollDeps,
  candidate: Candidate,
  cursorUid: number | undefined,
  uidValidity: string,
  log: Logger,
): Promise<void> {
  const details = { serverId: candidate.serverId, size: candidate.size, max: mailbox.maxMessageBytes };
  if (mailbox.oversize === 'skip') {
    deps.store.recordOversize(mailbox.name, candidate.serverId, cursorUid, uidValidity);
    log.warn(details, 'message over maxMessageBytes left on the server');
    return;
  }
  const raw = await session.fetchHeaders(candidate);
  const parsed = await deps.parse(raw);
  deps.store.ingest({
    mailbox: mailbox.name, serverId: candidate.serverId, uid: cursorUid, uidValidity, raw, parsed,
    acknowledged: true, headersOnly: true, classification: classify(raw, parsed), policy: mailbox.policy,
  });
  log.warn(details, 'message over maxMessageBytes: headers stored, message left on the server');
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
  // Once a message fails and is left for a retry, the cursor must not pass it: later messages
  // are still stored (their receipts keep them from being fetched twice), the cursor waits.
  let blocked = false;
  for (const candidate of todo) {
    if (deps.signal?.aborted) {
      log.info('stopping: shutdown requested');
      break;
    }
    if (summary.bytes >= mailbox.maxBytes) {
      log.info({ bytes: summary.bytes, cap: mailbox.maxBytes }, 'maxBytes reached for this run; the rest come next run');
      break;
    }
    const cursorUid = blocked ? undefined : candidate.uid;
    let raw: Buffer | undefined;
    let result;
    try {
      if (candidate.size > mailbox.maxMessageBytes) {
        await handleOversize(mailbox, session, deps, candidate, cursorUid, listing.uidValidity, log);
        summary.oversize += 1;
        continue;
      }
      raw = await session.fetch(candidate, mailbox.maxMessageBytes);
      summary.fetched += 1;
      summary.bytes += raw.length;
      const parsed = await deps.parse(raw);
      const classification = classify(raw, parsed);
      if (parsed.parseError !== undefined) log.warn({ serverId: candidate.serverId, parseError: parsed.parseError }, 'stored raw: message could not be parsed');
      result = store.ingest({
        mailbox: name,
        serverId: candidate.serverId,
        uid: cursorUid,
        uidValidity: listing.uidValidity,
        raw,
        parsed,
        acknowledged: !needsAck,
        classification,
        policy: mailbox.policy,
      });
      if (result.outcome === 'stored' && result.probableLoop) {
        log.warn({ serverId: candidate.serverId, from: parsed.from?.address, ticket: result.ticketNumber }, 'probable mail loop: this sender opened many tickets in a short time');
      }
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && ENVIRONMENTAL_SQLITE.test(code)) throw err;
      const attempts = store.recordMessageFailure(name, candidate.serverId, scrub(errorMessage(err)), raw);
      // A refusal of this message is its own fault after a few tries; a broken connection may be
      // the network's, so it takes many more before the message itself is blamed.
      const limit = err instanceof ProtocolError ? MAX_MESSAGE_ATTEMPTS : MAX_CONNECTION_ATTEMPTS;
      if (attempts >= limit) {
        store.quarantine(name, candidate.serverId, cursorUid, listing.uidValidity);
        summary.quarantined += 1;
        log.error({ serverId: candidate.serverId, attempts, err: scrub(errorMessage(err)) }, 'message quarantined after repeated failures; left on the server');
      } else {
        blocked = true;
        summary.messageFailures += 1;
        log.warn({ serverId: candidate.serverId, attempts, err: scrub(errorMessage(err)) }, 'message failed; it is retried next run');
      }
      // A broken connection ends this session; a refusal of one message does not.
      if (!(err instanceof ProtocolError)) throw err;
      continue;
    }
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
  if (mailbox.protocol === 'imap' && !blocked) catchUpCursor(store, name, listing);
  await session.close();
  store.markAcknowledged(name, deferred);
}
