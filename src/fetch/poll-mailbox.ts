import type { MailboxConfig } from '../config/types.js';
import { errorMessage, MailpollError, ProtocolError } from '../errors.js';
import type { Logger } from '../log.js';
import { scrub } from '../log.js';
import type { Analyser } from '../parse/analyse-pool.js';
import type { Analysis } from '../parse/analyse.js';
import { LARGE_MESSAGE_BYTES, type Candidate, type Listing, type MailSession, type MailSource } from '../sources/mail-source.js';
import type { MailStore } from '../store/mail-store.js';
import { planOwedAcks, selectNew } from './plan.js';
import { Handoff } from './handoff.js';
import { emptySummary, type FetchProgress, type MailboxSummary } from './summary.js';

/** One server command fetches at most this many messages or bytes (IMAP UID FETCH of a set). */
const SEGMENT_MESSAGES = 100;
const SEGMENT_BYTES = 16 * 1024 * 1024;
/** One transaction commits at most this many messages or bytes. */
const GROUP_MESSAGES = 100;
const GROUP_BYTES = 16 * 1024 * 1024;
/** Fetched but not yet committed: the network side waits beyond this. */
const HANDOFF_BYTES = 32 * 1024 * 1024;

/** A message that failed this many times (across runs) is quarantined instead of retried. */
export const MAX_MESSAGE_ATTEMPTS = 3;
/** ...unless each failure was the connection breaking while this message was in transfer. */
export const MAX_CONNECTION_ATTEMPTS = 10;

/** Database failures that say nothing about the message at hand: never counted against it. */
const ENVIRONMENTAL_SQLITE = /^SQLITE_(FULL|IOERR|BUSY|LOCKED|READONLY|CANTOPEN|NOMEM|CORRUPT|NOTADB)/;

export interface PollDeps {
  store: MailStore;
  /** Parse, classify, hash: in place, or on a worker thread (analyse-pool.ts). */
  analyser: Analyser;
  log: Logger;
  /** Called after each commit, for a progress line on a terminal. */
  onProgress?: (progress: FetchProgress) => void;
  /** Called after each group commit (run-fetch.ts hands the WAL checkpoint to the worker). */
  afterCommit?: () => void;
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

/** What the network side hands to the store side, in server order. */
type Item =
  | { kind: 'message'; candidate: Candidate; raw: Buffer; analysis: Promise<Analysis> }
  | { kind: 'failed'; candidate: Candidate; error: Error }
  | { kind: 'oversize'; candidate: Candidate; headers: Buffer | undefined };

/** Runs of candidates fetched by one command; an oversize message stands alone. */
function segments(todo: readonly Candidate[], maxMessageBytes: number): { oversize: boolean; candidates: Candidate[] }[] {
  const out: { oversize: boolean; candidates: Candidate[] }[] = [];
  let run: Candidate[] = [];
  let bytes = 0;
  const close = () => {
    if (run.length > 0) out.push({ oversize: false, candidates: run });
    run = [];
    bytes = 0;
  };
  for (const c of todo) {
    if (c.size > maxMessageBytes) {
      close();
      out.push({ oversize: true, candidates: [c] });
      continue;
    }
    if (run.length >= SEGMENT_MESSAGES || (run.length > 0 && bytes + c.size > SEGMENT_BYTES)) close();
    run.push(c);
    bytes += c.size;
  }
  close();
  return out;
}

/** The candidates a run takes under its byte cap: each one starts while the bytes before it are under the cap. */
function withinBytes(todo: readonly Candidate[], cap: number): Candidate[] {
  let bytes = 0;
  const out: Candidate[] = [];
  for (const c of todo) {
    if (bytes >= cap) break;
    out.push(c);
    bytes += Math.min(c.size, cap);
  }
  return out;
}

/**
 * A poll as two halves that overlap: the network side streams messages off the server, one
 * command per segment, and hands them over; the store side analyses a group (on a worker thread)
 * and commits it in one transaction, in server order. Acknowledgements go out from the network
 * side between two fetch commands, and only for messages already committed: the exactly-once
 * protocol of DESIGN.md, with batching but without ever acting on the server ahead of SQLite.
 */
async function runSession(mailbox: MailboxConfig, session: MailSession, deps: PollDeps, summary: MailboxSummary, log: Logger): Promise<void> {
  const { store } = deps;
  const name = mailbox.name;
  let known: ReadonlySet<string> | undefined;
  const knownOf = (ids: readonly string[]) => (known ??= store.knownServerIds(name, ids));
  const memory = mailbox.protocol === 'pop3'
    ? { allKnown: store.knownListing(name), remember: (sha256: string) => store.rememberKnownListing(name, sha256) }
    : undefined;
  const listing = await session.list(mailbox.protocol === 'imap' ? store.cursor(name) : null, knownOf, () => deps.analyser.warm?.(), memory);
  const needsAck = mailbox.after !== 'keep';
  // POP3 applies DELE only at a clean QUIT (RFC 1939 section 6): those are marked after close().
  const deferred: string[] = [];
  // Ids whose commit is on disk, for the network side to acknowledge between two fetch commands.
  const ackable: string[] = [];
  // Ids committed by the group transaction in progress: not ackable before it commits (a rolled
  // back group must never be acknowledged), nor before the commit is synced.
  const committing: string[] = [];
  // The run commits without waiting for the disk (run-fetch.ts); each group's ids become ackable
  // when an fsync of the WAL that started after its commit has finished, off this thread.
  let durable: Promise<void> = Promise.resolve();
  const ackableWhenSynced = (ids: string[]) => {
    if (ids.length === 0) return;
    durable = durable.then(() => store.syncWal()).then(() => void ackable.push(...ids));
    // Handled here so a failure is not an unhandled rejection; awaited (and thrown) at the end.
    durable.catch(() => {});
  };
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
    await store.syncWal();
    await acknowledge(plan.ack);
  }

  const selected = selectNew(listing.candidates, knownOf(listing.candidates.map((c) => c.serverId)), mailbox.maxMessages);
  summary.listed = selected.fresh;
  const todo = withinBytes(selected.todo, mailbox.maxBytes);
  if (selected.fresh > todo.length) log.info({ fresh: selected.fresh, taking: todo.length }, 'more new mail than maxMessages/maxBytes allow in one run; the rest comes next run');
  const totalBytes = todo.reduce((n, c) => n + (c.size > mailbox.maxMessageBytes ? 0 : c.size), 0);
  const progress = () => {
    const done = summary.fetched + summary.oversize + summary.messageFailures + summary.quarantined;
    deps.onProgress?.({ mailbox: name, done, total: todo.length, bytes: summary.bytes, totalBytes });
  };
  if (todo.length > 0) {
    // There is mail: the analysis worker loads the parser while the first messages download (IMAP
    // started it while the server listed). Not earlier: most polls find nothing, and they should
    // not pay for a worker. Nor when every message is large: those are analysed in place, and the
    // worker's memory would only add to theirs.
    if (todo.some((c) => c.size <= LARGE_MESSAGE_BYTES)) deps.analyser.warm?.();
    else await deps.analyser.release?.();
    progress();
  }

  // ---- network side ----
  const handoff = new Handoff<Item>(HANDOFF_BYTES);
  // Items handed over and items the store side is done with (committed, or dropped at shutdown).
  let handed = 0;
  let settled = 0;
  let storeStopped = false;
  let wakeProducer: (() => void) | undefined;
  const settle = (n: number) => {
    settled += n;
    wakeProducer?.();
  };
  const hand = (item: Item, bytes: number) => {
    handed += 1;
    return handoff.put(item, bytes);
  };
  /**
   * Waits before fetching a large message (LARGE_MESSAGE_BYTES) until the store side has caught up:
   * else the next large one would arrive while this one is still parsed and committed, and memory
   * would hold two or three of them instead of one.
   */
  const aloneIfLarge = async (next: Candidate | undefined) => {
    if (next === undefined || next.size <= LARGE_MESSAGE_BYTES) return;
    while (!storeStopped && settled < handed) await new Promise<void>((resolve) => (wakeProducer = resolve));
  };
  let fatal: unknown;
  let inTransfer: Candidate | undefined;
  let stopping = false;
  const producer = (async () => {
    try {
      for (const segment of segments(todo, mailbox.maxMessageBytes)) {
        if (stopping || deps.signal?.aborted) {
          log.info('stopping: shutdown requested');
          break;
        }
        // No command is in flight here, so acknowledgements cannot deadlock a fetch.
        await acknowledge(ackable.splice(0));
        const first = segment.candidates[0] as Candidate;
        if (segment.oversize) {
          await hand(await oversizeItem(mailbox, session, first), 0);
          continue;
        }
        const rest = [...segment.candidates];
        inTransfer = rest[0];
        await aloneIfLarge(first);
        for await (const f of session.stream(segment.candidates, mailbox.maxMessageBytes)) {
          if (stopping) {
            // Shutdown: the message in hand was handed over; an IMAP FETCH is drained (leaving a
            // fetch iteration early is not safe with imapflow), POP3 simply sends no more RETR.
            if (mailbox.protocol === 'pop3') break;
            continue;
          }
          rest.splice(rest.indexOf(f.candidate), 1);
          inTransfer = rest[0];
          if (f.error) await hand({ kind: 'failed', candidate: f.candidate, error: f.error }, 0);
          // Analysis starts the moment the bytes arrive, on a worker, while the store side commits
          // earlier messages and the network side reads the next ones.
          else await hand({ kind: 'message', candidate: f.candidate, raw: f.raw, analysis: deps.analyser.analyse(f.raw) }, f.raw.length);
          // Handed over: the loop keeps `f` in hidden registers until the next message is in, so
          // its bytes are let go of here (measured: else a large message stays alive while the
          // next one downloads).
          (f as { raw?: Buffer }).raw = undefined;
          if (deps.signal?.aborted) {
            stopping = true;
            inTransfer = undefined;
          }
          // The stream fetches the next message only when asked for it, after this.
          await aloneIfLarge(inTransfer);
        }
        inTransfer = undefined;
      }
    } catch (err) {
      fatal = err;
    } finally {
      handoff.end();
    }
  })();

  // ---- store side ----
  // Once a message fails and is left for a retry, the cursor must not pass it: later messages
  // are still stored (their receipts keep them from being fetched twice), the cursor waits.
  let blocked = false;
  const failMessage = (candidate: Candidate, err: unknown, raw: Buffer | undefined) => {
    const attempts = store.recordMessageFailure(name, candidate.serverId, scrub(errorMessage(err)), raw);
    // A refusal of this message is its own fault after a few tries; a broken connection may be
    // the network's, so it takes many more before the message itself is blamed.
    const limit = err instanceof ProtocolError ? MAX_MESSAGE_ATTEMPTS : MAX_CONNECTION_ATTEMPTS;
    if (attempts >= limit) {
      store.quarantine(name, candidate.serverId, blocked ? undefined : candidate.uid, listing.uidValidity);
      summary.quarantined += 1;
      log.error({ serverId: candidate.serverId, attempts, err: scrub(errorMessage(err)) }, 'message quarantined after repeated failures; left on the server');
    } else {
      blocked = true;
      summary.messageFailures += 1;
      log.warn({ serverId: candidate.serverId, attempts, err: scrub(errorMessage(err)) }, 'message failed; it is retried next run');
    }
  };
  const apply = (item: Item, analysis: Analysis | undefined) => {
    const { candidate } = item;
    const cursorUid = blocked ? undefined : candidate.uid;
    if (item.kind === 'failed') return failMessage(candidate, item.error, undefined);
    if (item.kind === 'oversize') {
      summary.oversize += 1;
      const details = { serverId: candidate.serverId, size: candidate.size, max: mailbox.maxMessageBytes };
      if (item.headers === undefined || analysis === undefined) {
        store.recordOversize(name, candidate.serverId, cursorUid, listing.uidValidity);
        log.warn(details, 'message over maxMessageBytes left on the server');
      } else {
        store.ingest({
          mailbox: name, serverId: candidate.serverId, uid: cursorUid, uidValidity: listing.uidValidity, raw: item.headers,
          parsed: analysis.parsed, classification: analysis.classification, policy: mailbox.policy, acknowledged: true, headersOnly: true,
        });
        log.warn(details, 'message over maxMessageBytes: headers stored, message left on the server');
      }
      return;
    }
    if (analysis === undefined) return;
    summary.fetched += 1;
    summary.bytes += item.raw.length;
    const { parsed } = analysis;
    if (parsed.parseError !== undefined) log.warn({ serverId: candidate.serverId, parseError: parsed.parseError }, 'stored raw: message could not be parsed');
    let result;
    try {
      result = store.ingest({
        mailbox: name, serverId: candidate.serverId, uid: cursorUid, uidValidity: listing.uidValidity, raw: item.raw,
        parsed, classification: analysis.classification, dedupeHash: analysis.dedupeHash, rawSha256: analysis.rawSha256, policy: mailbox.policy, acknowledged: !needsAck,
      });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && ENVIRONMENTAL_SQLITE.test(code)) throw err;
      return failMessage(candidate, err, item.raw);
    }
    if (result.outcome === 'known') return;
    if (result.outcome === 'stored') {
      summary.stored += 1;
      if (result.newTicket) summary.newTickets += 1;
      if (result.probableLoop) log.warn({ serverId: candidate.serverId, from: parsed.from?.address, ticket: result.ticketNumber }, 'probable mail loop: this sender opened many tickets in a short time');
    } else {
      summary.duplicates += 1;
    }
    if (needsAck) committing.push(candidate.serverId);
  };

  let committedSinceAbort = false;
  try {
    for (let group = await handoff.take(GROUP_MESSAGES, GROUP_BYTES); group.length > 0; group = await handoff.take(GROUP_MESSAGES, GROUP_BYTES)) {
      // Shutdown: what was fetched ahead but not yet taken up is dropped, uncommitted and
      // unacknowledged, so it is simply fetched again next run; the group in hand was committed.
      if (deps.signal?.aborted && committedSinceAbort) {
        settle(group.length);
        continue;
      }
      const analyses = await Promise.all(
        group.map((item) => {
          if (item.kind === 'message') return item.analysis;
          return item.kind === 'oversize' && item.headers !== undefined ? deps.analyser.analyse(item.headers) : undefined;
        }),
      );
      // Step 3 for the whole group: one commit, each message in its own savepoint.
      committing.length = 0;
      store.batch(() => group.forEach((item, i) => apply(item, analyses[i])));
      ackableWhenSynced(committing.splice(0));
      deps.afterCommit?.();
      settle(group.length);
      // Committed: let go of the bytes and analyses now. `group` stays referenced while the next
      // take() waits, which for a large message means while the next one downloads.
      group.length = 0;
      analyses.length = 0;
      if (deps.signal?.aborted) committedSinceAbort = true;
      progress();
    }
  } catch (err) {
    handoff.cancel();
    storeStopped = true;
    wakeProducer?.();
    await producer;
    throw err;
  }
  await producer;

  if (fatal !== undefined) {
    // The connection broke mid-segment: what arrived is committed above; the message that was
    // on the wire takes the blame (getmail's lesson: a message that always kills the connection
    // must not block the mailbox forever), then the run ends as failed.
    if (inTransfer !== undefined && !(fatal instanceof ProtocolError)) store.batch(() => failMessage(inTransfer as Candidate, fatal, undefined));
    throw fatal;
  }
  await durable;
  await acknowledge(ackable.splice(0));
  if (mailbox.protocol === 'imap' && !blocked) catchUpCursor(store, name, listing);
  await session.close();
  store.markAcknowledged(name, deferred);
}

/** Oversize: left alone, or with `oversize: headers` its header block fetched to be stored. */
async function oversizeItem(mailbox: MailboxConfig, session: MailSession, candidate: Candidate): Promise<Item> {
  if (mailbox.oversize === 'skip') return { kind: 'oversize', candidate, headers: undefined };
  try {
    return { kind: 'oversize', candidate, headers: await session.fetchHeaders(candidate) };
  } catch (err) {
    if (err instanceof ProtocolError) return { kind: 'failed', candidate, error: err };
    throw err;
  }
}
