/**
 * The MailSource port over POP3. A POP3 maildrop has no folders, no flags and no cursor: every
 * session lists what is on the server by UIDL (RFC 1939 section 7), and the fetch loop's dedupe on
 * that UIDL decides what is new. The only post-fetch action is DELE, which the server applies at
 * QUIT and forgets if the connection drops first (RFC 1939 section 6).
 */
import { asCredentials, pop3Login, type Credentials } from '../../auth/login.js';
import type { MailboxConfig } from '../../config/types.js';
import { ProtocolError } from '../../errors.js';
import { LARGE_MESSAGE_BYTES, type Candidate, type Cursor, type Fetched, type Listing, type ListingMemory, type MailSession, type MailSource } from '../mail-source.js';
import { assertTransportAllowed, Pop3Client, type ListEntry, type UidlEntry, type UidlListing } from './client.js';

/** Up to this many new messages get one `LIST n` each instead of a LIST of the whole maildrop. */
const FEW_NEW = 20;

/**
 * RETRs on the wire at once when the server pipelines (RFC 2449 section 6.6): at most this many,
 * and at most this many bytes by their LIST sizes. Enough that the server is never left waiting for
 * the next command while the fetch loop takes a message; small enough that what arrives ahead of
 * the loop stays a few megabytes. The byte bound is the large-message size, so a message the
 * fetch loop wants fetched alone (LARGE_MESSAGE_BYTES) is never asked for ahead.
 */
const RETR_WINDOW_MESSAGES = 32;
const RETR_WINDOW_BYTES = LARGE_MESSAGE_BYTES;
/** DELEs on the wire at once when the server pipelines. Each answer is one short line. */
const DELE_WINDOW = 100;

/** The part of a logger this source uses. */
export interface WarnLogger {
  warn(obj: object, msg?: string): void;
}

/**
 * A POP3 source for one mailbox. `password` is used for login only and never appears in an error
 * or a log line; `log` receives warnings about inconsistent listings (the weak-TLS warning is the
 * fetch loop's, once per run for every protocol).
 */
export function pop3Source(mailbox: MailboxConfig, password: string | Credentials, log?: WarnLogger): MailSource {
  return {
    async open(): Promise<MailSession> {
      assertTransportAllowed(mailbox);
      const client = await Pop3Client.connect({ mailbox });
      try {
        await pop3Login(client, mailbox.username, asCredentials(password));
      } catch (err) {
        client.destroy();
        throw err;
      }
      return new Pop3Session(client, mailbox, log);
    },
  };
}

class Pop3Session implements MailSession {
  /** The entries of the latest list() that became candidates. Numbers are valid for this session only. */
  private listed: readonly UidlEntry[] = [];
  /** UIDL -> message number over `listed`, built when first needed (an idle poll never needs it). */
  private numbers: Map<string, number> | undefined;
  /** UIDLs already sent DELE in this session, so a repeated acknowledge is harmless. */
  private readonly deleted = new Set<string>();

  constructor(
    private readonly client: Pop3Client,
    private readonly mailbox: MailboxConfig,
    private readonly log: WarnLogger | undefined,
  ) {}

  /** POP3 has no cursor: every session lists the whole maildrop; the cursor is ignored. */
  async list(_cursor: Cursor | null, known?: (serverIds: readonly string[]) => ReadonlySet<string>, _mailAhead?: () => void, memory?: ListingMemory): Promise<Listing> {
    const listing = await this.uidlOrExplain();
    // Byte for byte the listing of an earlier poll in which every message was stored already:
    // receipts are never removed, so nothing in it is new, and it need not be read line by line.
    // Only when the mail is kept: with `after: delete`, owed DELEs need this session's numbers.
    const keeps = this.mailbox.after === 'keep';
    if (keeps && memory?.allKnown === listing.sha256) {
      this.listed = [];
      this.numbers = undefined;
      return { uidValidity: '', candidates: [] };
    }
    const uidls = listing.entries();
    const stored = known?.(uidls.map((u) => u.uid));
    // A set as large as the list: every listed id is stored (the ids are distinct, or it would be smaller).
    if (keeps && stored !== undefined && stored.size === uidls.length) memory?.remember(listing.sha256);
    const sizes = await this.sizesOf(uidls, stored);
    // `stored` is a subset of the listed ids: as large as the list, the list has no repeated UIDL.
    const distinct = stored !== undefined && stored.size === uidls.length;
    const { candidates, kept } = joinListing(uidls, sizes, (obj, msg) => this.log?.warn({ mailbox: this.mailbox.name, ...obj }, msg), distinct);
    this.listed = kept;
    this.numbers = undefined;
    return { uidValidity: '', candidates };
  }

  /**
   * Sizes from LIST. A mailbox that keeps its mail holds mostly messages stored long ago, whose
   * sizes nobody needs: with few new ones each is asked with `LIST n` (RFC 1939 section 5; all at
   * once when the server pipelines), and the known ones get size 0 (a size is only read for
   * messages still to fetch).
   */
  private async sizesOf(uidls: readonly UidlEntry[], stored: ReadonlySet<string> | undefined): Promise<Sizes> {
    if (stored === undefined) return wholeListing(await this.client.list());
    // Every listed message is stored already (the usual poll of a kept maildrop): no size is needed.
    if (stored.size === uidls.length) return NO_SIZES;
    const fresh = uidls.filter((u) => !stored.has(u.uid));
    if (fresh.length > FEW_NEW) return wholeListing(await this.client.list());
    const asked = await Promise.all(fresh.map(async (u) => [u.number, await this.client.listOne(u.number)] as const));
    const sizes = new Map(asked);
    return { of: (n) => sizes.get(n) ?? 0, listed: undefined };
  }

  /**
   * RETR for each candidate, yielded in order. When the server pipelines, a window of RETRs is on
   * the wire at once, bounded by count and by LIST sizes, and topped up before each message is
   * handed out, so the server streams message after message instead of waiting a round trip for
   * each command. A message too large for the window is asked for only when the loop asks for it
   * (the fetch loop may want the messages before it committed first). Without PIPELINING, each RETR
   * goes out when the loop asks for its message, one at a time. A refusal of one message (-ERR,
   * over the size limit) is yielded as that message's error; anything that ends the session is
   * thrown.
   */
  async *stream(candidates: readonly Candidate[], maxBytes: number): AsyncIterable<Fetched> {
    const window: InFlight[] = [];
    let windowBytes = 0;
    let next = 0;
    const send = (c: Candidate) => {
      window.push({ size: c.size, outcome: this.retrOutcome(c, maxBytes) });
      windowBytes += c.size;
      next += 1;
    };
    /** Sends the next RETRs while they fit the window, in order. */
    const fill = () => {
      if (!this.client.pipelining) return;
      for (let c = candidates[next]; c !== undefined; c = candidates[next]) {
        if (window.length >= RETR_WINDOW_MESSAGES || windowBytes + c.size > RETR_WINDOW_BYTES) return;
        send(c);
      }
    };
    while (next < candidates.length || window.length > 0) {
      // The loop asks for the next message: it goes out now if it is not on the wire yet.
      if (window.length === 0) send(candidates[next] as Candidate);
      fill();
      const head = window.shift() as InFlight;
      const outcome = await head.outcome;
      windowBytes -= head.size;
      if (outcome.kind === 'fatal') throw outcome.error;
      // The next RETRs go out before the loop takes this message, so the wire stays busy meanwhile.
      fill();
      yield outcome.fetched;
    }
  }

  /**
   * Sends RETR for one candidate; the promise never rejects, so answers that nobody awaits any more
   * (the loop stopped early, or the session broke) never become unhandled rejections.
   */
  private retrOutcome(candidate: Candidate, maxBytes: number): Promise<Outcome> {
    let n: number;
    try {
      n = this.numberOf(candidate.serverId);
    } catch (err) {
      return Promise.resolve({ kind: 'fetched', fetched: { candidate, error: asError(err) } });
    }
    const sizeHint = candidate.size > 0 ? candidate.size : undefined;
    return this.client.retr(n, maxBytes, sizeHint).then(
      (raw): Outcome => ({ kind: 'fetched', fetched: { candidate, raw } }),
      (err: unknown): Outcome => {
        // -ERR or over the size limit leaves the session usable and concerns this message only; a
        // ProtocolError that ended the session (the stream broke) is as fatal as a cut connection.
        if (err instanceof ProtocolError && this.client.usable) return { kind: 'fetched', fetched: { candidate, error: err } };
        return { kind: 'fatal', error: err };
      },
    );
  }

  async fetchHeaders(candidate: Candidate): Promise<Buffer> {
    return this.client.top(this.numberOf(candidate.serverId), 1024 * 1024);
  }

  async acknowledge(serverIds: readonly string[]): Promise<void> {
    if (this.mailbox.after !== 'delete') return; // 'keep': the messages stay on the server.
    // Resolve every id before the first DELE, so an unknown one sends nothing.
    const targets = serverIds.filter((id) => !this.deleted.has(id)).map((id) => ({ id, n: this.numberOf(id) }));
    // A DELE only marks the message; the server deletes it at QUIT, and forgets the mark if the
    // connection drops before that (RFC 1939 section 6). close() is the real commit point. With
    // PIPELINING a batch goes out at once; without it, one at a time, stopping at the first refusal.
    const batch = this.client.pipelining ? DELE_WINDOW : 1;
    for (let i = 0; i < targets.length; i += batch) await this.dele(targets.slice(i, i + batch));
  }

  /** DELE for each target at once; marks those the server confirmed, then throws the first refusal. */
  private async dele(targets: readonly { id: string; n: number }[]): Promise<void> {
    const answers = await Promise.allSettled(targets.map((t) => this.client.dele(t.n)));
    let refusal: unknown;
    answers.forEach((answer, i) => {
      if (answer.status === 'fulfilled') this.deleted.add((targets[i] as { id: string }).id);
      else refusal ??= answer.reason;
    });
    if (refusal !== undefined) throw refusal;
  }

  /**
   * QUIT. With `after: delete`, resolves once the server confirmed the UPDATE state, i.e. the DELEs
   * are applied; otherwise no DELE was ever sent, and the answer is not waited for.
   */
  async close(): Promise<void> {
    if (this.mailbox.after === 'delete') await this.client.quit();
    else this.client.leave();
  }

  abort(): void {
    this.client.destroy();
  }

  private numberOf(serverId: string): number {
    this.numbers ??= numbersOf(this.listed);
    const n = this.numbers.get(serverId);
    if (n === undefined) {
      throw new ProtocolError(`message ${serverId} is not in the current POP3 listing of ${this.mailbox.name}`, {
        mailbox: this.mailbox.name,
      });
    }
    return n;
  }

  /** Without UIDL there is no stable id, and no way to know what was already stored. */
  private async uidlOrExplain(): Promise<UidlListing> {
    try {
      return await this.client.uidlListing();
    } catch (err) {
      if (err instanceof ProtocolError && err.serverResponse !== undefined) {
        throw new ProtocolError(
          `POP3 server of ${this.mailbox.name} refused UIDL (${err.serverResponse}); mailpoll needs UIDL to store each message exactly once`,
          { mailbox: this.mailbox.name, serverResponse: err.serverResponse, cause: err },
        );
      }
      throw err;
    }
  }
}

/** A RETR on the wire and what its answer will be taken as. */
interface InFlight {
  /** Its LIST size, counted against the window until the message is taken. */
  size: number;
  outcome: Promise<Outcome>;
}

/** A message (or why the server would not give it), or an error that ends the session. */
type Outcome = { kind: 'fetched'; fetched: Fetched } | { kind: 'fatal'; error: unknown };

/** Message sizes by number: from a LIST of the whole maildrop, or from `LIST n` of the new ones. */
export interface Sizes {
  /** The size of message `n`; undefined when a whole LIST did not list it. */
  of(n: number): number | undefined;
  /** Every number a whole LIST listed; undefined when only some messages were asked. */
  listed: readonly number[] | undefined;
}

/** Size 0 for every message: none is to be fetched. */
const NO_SIZES: Sizes = { of: () => 0, listed: undefined };

/** Sizes from a LIST of the whole maildrop. */
export function wholeListing(entries: readonly ListEntry[]): Sizes {
  const sizes = new Map(entries.map((e) => [e.number, e.size]));
  return { of: (n) => sizes.get(n), listed: entries.map((e) => e.number) };
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Joins UIDL and LIST by message number, in server order. A message missing from either answer,
 * or sharing its UIDL with an earlier one (RFC 1939 section 7 forbids it, broken servers do it),
 * is left out: never listed means never fetched and never deleted, and a warning says so.
 * `distinct` says the UIDLs are known to be all different, so they need not be checked again.
 * `kept` are the entries that became candidates (`uidls` itself when none was left out).
 */
export function joinListing(
  uidls: readonly UidlEntry[],
  sizes: Sizes,
  warn: (obj: object, msg: string) => void,
  distinct = false,
): { candidates: Candidate[]; kept: readonly UidlEntry[] } {
  const seen = distinct ? undefined : new Set<string>();
  const candidates: Candidate[] = [];
  const kept: UidlEntry[] = [];
  for (const entry of uidls) {
    const { number, uid } = entry;
    const size = sizes.of(number);
    if (size === undefined) {
      warn({ messageNumber: number, serverId: uid }, 'message in UIDL but not in LIST; left on the server');
      continue;
    }
    if (seen !== undefined) {
      if (seen.has(uid)) {
        warn({ messageNumber: number, serverId: uid }, 'two messages share one UIDL; the later one is left on the server');
        continue;
      }
      seen.add(uid);
    }
    kept.push(entry);
    candidates.push({ serverId: uid, size });
  }
  if (sizes.listed !== undefined) {
    const inUidl = new Set(uidls.map((e) => e.number));
    for (const number of sizes.listed) {
      if (!inUidl.has(number)) warn({ messageNumber: number }, 'message in LIST but not in UIDL; left on the server');
    }
  }
  return { candidates, kept: kept.length === uidls.length ? uidls : kept };
}

/** UIDL -> message number. The entries are distinct by UIDL (joinListing saw to it). */
function numbersOf(entries: readonly UidlEntry[]): Map<string, number> {
  const numbers = new Map<string, number>();
  for (const { uid, number } of entries) numbers.set(uid, number);
  return numbers;
}
