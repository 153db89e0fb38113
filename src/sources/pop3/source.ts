/**
 * The MailSource port over POP3. A POP3 maildrop has no folders, no flags and no cursor: every
 * session lists what is on the server by UIDL (RFC 1939 section 7), and the fetch loop's dedupe on
 * that UIDL decides what is new. The only post-fetch action is DELE, which the server applies at
 * QUIT and forgets if the connection drops first (RFC 1939 section 6).
 */
import { asCredentials, pop3Login, type Credentials } from '../../auth/login.js';
import type { MailboxConfig } from '../../config/types.js';
import { ProtocolError } from '../../errors.js';
import type { Candidate, Cursor, Fetched, Listing, MailSession, MailSource } from '../mail-source.js';
import { assertTransportAllowed, Pop3Client, type ListEntry, type UidlEntry } from './client.js';

/** Up to this many new messages get one `LIST n` each instead of a LIST of the whole maildrop. */
const FEW_NEW = 20;

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
  /** UIDL -> message number, from the latest list(). Numbers are valid for this session only. */
  private numbers = new Map<string, number>();
  /** UIDLs already sent DELE in this session, so a repeated acknowledge is harmless. */
  private readonly deleted = new Set<string>();

  constructor(
    private readonly client: Pop3Client,
    private readonly mailbox: MailboxConfig,
    private readonly log: WarnLogger | undefined,
  ) {}

  /** POP3 has no cursor: every session lists the whole maildrop; the cursor is ignored. */
  async list(_cursor: Cursor | null, known?: (serverIds: readonly string[]) => ReadonlySet<string>): Promise<Listing> {
    const uidls = await this.uidlOrExplain();
    const sizes = await this.sizesOf(uidls, known);
    const { candidates, numbers } = joinListing(uidls, sizes, (obj, msg) => this.log?.warn({ mailbox: this.mailbox.name, ...obj }, msg));
    this.numbers = numbers;
    return { uidValidity: '', candidates };
  }

  /**
   * Sizes from LIST. A mailbox that keeps its mail holds mostly messages stored long ago, whose
   * sizes nobody needs: with few new ones each is asked with `LIST n` (RFC 1939 section 5), and
   * the known ones are listed with size 0 (a size is only read for messages still to fetch).
   */
  private async sizesOf(uidls: readonly UidlEntry[], known?: (serverIds: readonly string[]) => ReadonlySet<string>): Promise<ListEntry[]> {
    if (known === undefined) return this.client.list();
    const stored = known(uidls.map((u) => u.uid));
    const fresh = uidls.filter((u) => !stored.has(u.uid));
    if (fresh.length > FEW_NEW) return this.client.list();
    const sizes = new Map<number, number>();
    for (const u of fresh) sizes.set(u.number, await this.client.listOne(u.number));
    return uidls.map((u) => ({ number: u.number, size: sizes.get(u.number) ?? 0 }));
  }

  async *stream(candidates: readonly Candidate[], maxBytes: number): AsyncIterable<Fetched> {
    for (const candidate of candidates) {
      try {
        yield { candidate, raw: await this.client.retr(this.numberOf(candidate.serverId), maxBytes) };
      } catch (err) {
        // A refusal (-ERR, over the size limit) concerns this message; anything else ends the session.
        if (!(err instanceof ProtocolError)) throw err;
        yield { candidate, error: err };
      }
    }
  }

  async fetchHeaders(candidate: Candidate): Promise<Buffer> {
    return this.client.top(this.numberOf(candidate.serverId), 1024 * 1024);
  }

  async acknowledge(serverIds: readonly string[]): Promise<void> {
    if (this.mailbox.after !== 'delete') return; // 'keep': the messages stay on the server.
    // Resolve every id before the first DELE, so an unknown one sends nothing.
    const targets = serverIds.filter((id) => !this.deleted.has(id)).map((id) => ({ id, n: this.numberOf(id) }));
    for (const { id, n } of targets) {
      // Only marks the message; the server deletes it at QUIT, and forgets the mark if the
      // connection drops before that (RFC 1939 section 6). close() is the real commit point.
      await this.client.dele(n);
      this.deleted.add(id);
    }
  }

  /** QUIT; resolves once the server confirmed the UPDATE state, i.e. the DELEs are applied. */
  async close(): Promise<void> {
    await this.client.quit();
  }

  abort(): void {
    this.client.destroy();
  }

  private numberOf(serverId: string): number {
    const n = this.numbers.get(serverId);
    if (n === undefined) {
      throw new ProtocolError(`message ${serverId} is not in the current POP3 listing of ${this.mailbox.name}`, {
        mailbox: this.mailbox.name,
      });
    }
    return n;
  }

  /** Without UIDL there is no stable id, and no way to know what was already stored. */
  private async uidlOrExplain(): Promise<UidlEntry[]> {
    try {
      return await this.client.uidl();
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

/**
 * Joins UIDL and LIST by message number, in server order. A message missing from either answer,
 * or sharing its UIDL with an earlier one (RFC 1939 section 7 forbids it, broken servers do it),
 * is left out: never listed means never fetched and never deleted, and a warning says so.
 */
export function joinListing(
  uidls: readonly UidlEntry[],
  sizes: readonly ListEntry[],
  warn: (obj: object, msg: string) => void,
): { candidates: Candidate[]; numbers: Map<string, number> } {
  const sizeOf = new Map(sizes.map((e) => [e.number, e.size]));
  const numbers = new Map<string, number>();
  const candidates: Candidate[] = [];
  for (const { number, uid } of uidls) {
    const size = sizeOf.get(number);
    if (size === undefined) {
      warn({ messageNumber: number, serverId: uid }, 'message in UIDL but not in LIST; left on the server');
      continue;
    }
    if (numbers.has(uid)) {
      warn({ messageNumber: number, serverId: uid }, 'two messages share one UIDL; the later one is left on the server');
      continue;
    }
    numbers.set(uid, number);
    candidates.push({ serverId: uid, size });
  }
  const listed = new Set(uidls.map((e) => e.number));
  for (const { number } of sizes) {
    if (!listed.has(number)) warn({ messageNumber: number }, 'message in LIST but not in UIDL; left on the server');
  }
  return { candidates, numbers };
}
