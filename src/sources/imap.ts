import type { Writable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import { asCredentials, chooseImapMechanism, type Credentials } from '../auth/login.js';
import type { MailboxConfig } from '../config/types.js';
import { MailpollError, ProtocolError } from '../errors.js';
import { folderFailure, imapFailure } from './imap-errors.js';
import { imapClientOptions } from './imap-options.js';
import { LARGE_MESSAGE_BYTES, type Candidate, type Cursor, type Fetched, type Listing, type MailSession, type MailSource } from './mail-source.js';
import { quoted } from './imap-responses.js';
import { ImapRefusal, ImapWire, type FetchedSection } from './imap-wire.js';
import { tlsOptionsFor } from './tls-options.js';

/** Acknowledgements go out in chunks so no command line grows past what servers accept. */
const ACK_CHUNK = 500;
/** A header block larger than this is not a header block. */
const HEADER_BYTES = 8 * 1024 * 1024;

/**
 * IMAP: imapflow (loaded lazily: a cron tick with nothing due never pays for it) connects, logs in
 * and opens the folder; imap-wire.ts speaks the rest of the session on the same connection.
 * The server id is `UIDVALIDITY:UID`; candidates are the UIDs above the stored cursor.
 */
export function imapSource(mailbox: MailboxConfig, password: string | Credentials): MailSource {
  const credentials = asCredentials(password);
  return {
    async open(): Promise<MailSession> {
      const [{ ImapFlow }, { encodePath, normalizePath }] = await Promise.all([import('imapflow'), import('imapflow/lib/tools.js')]);
      const tls = await tlsOptionsFor(mailbox);
      const client = new ImapFlow(imapClientOptions(mailbox, credentials, tls));
      // imapflow emits 'error' on socket failures; unhandled it would crash the whole run. The
      // command that was running rejects as well, and that is where the failure is reported.
      client.on('error', () => {});
      try {
        chooseImapMechanism(client, mailbox, credentials);
        await client.connect();
      } catch (err) {
        client.close();
        throw imapFailure(err, mailbox, 'connect');
      }
      return new ImapSession(client, mailbox, (name) => encodePath(client, normalizePath(client, name)));
    },
  };
}

class ImapSession implements MailSession {
  private uidValidity = '';
  private moveTargetReady = false;
  /** The session after SELECT, taken over from imapflow when there is work for it (see wire()). */
  private taken: ImapWire | undefined;

  constructor(
    private readonly client: ImapFlow,
    private readonly mailbox: MailboxConfig,
    /** A folder's name as this server wants it: namespace prefix, modified UTF-7 unless UTF8=ACCEPT. */
    private readonly serverName: (folder: string) => string,
  ) {}

  async list(cursor: Cursor | null, _known?: unknown, mailAhead?: () => void): Promise<Listing> {
    if (this.taken !== undefined) throw new Error('an IMAP session lists once: imapflow no longer has the connection');
    let opened;
    try {
      // EXAMINE (read-only) when nothing is ever changed: even a bug cannot then touch the folder.
      opened = await this.client.mailboxOpen(this.mailbox.folder, { readOnly: this.mailbox.after === 'keep' });
    } catch (err) {
      throw folderFailure(err, this.mailbox, 'SELECT');
    }
    this.uidValidity = String(opened.uidValidity);
    // A different UIDVALIDITY means the old UIDs name other messages now (RFC 3501 section 2.3.1.1):
    // start from the beginning; the content-hash dedupe keeps already stored mail from returning.
    const from = cursor !== null && cursor.uidValidity === this.uidValidity ? cursor.lastUid + 1 : 1;
    if (opened.exists === 0 || (opened.uidNext !== undefined && from >= opened.uidNext)) {
      return { uidValidity: this.uidValidity, candidates: [] };
    }
    // There are UIDs above the cursor. Their sizes take the server a while (Dovecot reads each
    // message whose size it has not cached): long enough for the analysis worker to start meanwhile.
    // A server without UIDNEXT tells nothing here, and the caller starts the worker after listing.
    if (opened.uidNext !== undefined) mailAhead?.();
    let sizes;
    try {
      sizes = await this.wire().sizes(`${from}:*`);
    } catch (err) {
      throw this.fail(err, 'FETCH');
    }
    // `N:*` always includes the highest UID even when it is below N (RFC 3501 section 6.4.8).
    const candidates: Candidate[] = [...sizes]
      .filter(([uid]) => uid >= from)
      .sort(([a], [b]) => a - b)
      .map(([uid, size]) => ({ serverId: `${this.uidValidity}:${uid}`, uid, size }));
    return { uidValidity: this.uidValidity, candidates };
  }

  /**
   * The connection from here on: imapflow has logged in and opened the folder, and hands the
   * socket over (its public unbind()). What is left is listing, fetching and acknowledging, spoken
   * by imap-wire.ts: imapflow took 85-95 ms to read the sizes of 1000 new messages, the wire 3-8.
   */
  private wire(): ImapWire {
    if (this.taken !== undefined) return this.taken;
    const { readSocket, writeSocket, socket } = this.client.unbind();
    // imapflow's idle timeout no longer has a listener; the wire times its own commands.
    socket.setTimeout(0);
    this.taken = new ImapWire({ input: readSocket, output: writeSocket as unknown as Writable, socket }, this.mailbox);
    return this.taken;
  }

  /**
   * Small messages in one UID FETCH per run of them, each large one in a command of its own, sent
   * only when the caller asks for it (the fetch loop first lets the store catch up, so memory holds
   * one large message, not several). In server order either way.
   */
  async *stream(candidates: readonly Candidate[], maxBytes: number): AsyncIterable<Fetched> {
    for (const run of byTransfer(candidates)) yield* this.fetchSet(run.candidates, maxBytes);
  }

  private async *fetchSet(candidates: readonly Candidate[], maxBytes: number): AsyncIterable<Fetched> {
    const byUid = new Map(candidates.map((c) => [c.uid, c]));
    const seen = new Set<number>();
    try {
      for await (const m of this.wire().fetch(uidSet(candidates), 'BODY.PEEK[]', maxBytes)) {
        const candidate = byUid.get(m.uid);
        if (candidate === undefined || seen.has(m.uid)) continue;
        seen.add(m.uid);
        if (m.bytes === 'too-large') yield { candidate, error: this.tooLarge(candidate) };
        else if (m.bytes === 'missing') yield { candidate, error: this.vanished(candidate) };
        else yield { candidate, raw: m.bytes };
      }
    } catch (err) {
      throw this.fail(err, 'FETCH');
    }
    for (const candidate of candidates) {
      if (candidate.uid !== undefined && !seen.has(candidate.uid)) yield { candidate, error: this.vanished(candidate) };
    }
  }

  private tooLarge(c: Candidate): ProtocolError {
    return new ProtocolError(`message UID ${c.uid} is larger than maxMessageBytes`, { mailbox: this.mailbox.name });
  }

  private vanished(c: Candidate): ProtocolError {
    return new ProtocolError(`message UID ${c.uid} vanished before it could be fetched`, { mailbox: this.mailbox.name });
  }

  async fetchHeaders(candidate: Candidate): Promise<Buffer> {
    let headers: FetchedSection['bytes'] | undefined;
    try {
      for await (const m of this.wire().fetch(String(candidate.uid), 'BODY.PEEK[HEADER]', HEADER_BYTES)) {
        if (m.uid === candidate.uid) headers ??= m.bytes;
      }
    } catch (err) {
      throw this.fail(err, 'FETCH');
    }
    if (headers === 'too-large') {
      throw new ProtocolError(`the header block of message UID ${candidate.uid} is larger than ${HEADER_BYTES} bytes`, { mailbox: this.mailbox.name });
    }
    if (headers === undefined || headers === 'missing') {
      throw new ProtocolError(`message UID ${candidate.uid} vanished before its headers could be fetched`, { mailbox: this.mailbox.name });
    }
    return headers;
  }

  async acknowledge(serverIds: readonly string[]): Promise<void> {
    const after = this.mailbox.after;
    if (after === 'keep' || serverIds.length === 0) return;
    const uids = serverIds
      .filter((id) => id.startsWith(`${this.uidValidity}:`))
      .map((id) => Number(id.slice(this.uidValidity.length + 1)));
    const wire = this.wire();
    if (after === 'move') await this.ensureMoveTarget(wire);
    const server = { move: this.client.capabilities.has('MOVE'), uidplus: this.client.capabilities.has('UIDPLUS') };
    const target = after === 'move' ? quoted(this.serverName(this.mailbox.moveTo ?? '')) : '';
    for (let i = 0; i < uids.length; i += ACK_CHUNK) {
      const range = uids.slice(i, i + ACK_CHUNK).join(',');
      try {
        for (const c of ackCommands(after, range, server, target)) await wire.command(c.line, c.label);
      } catch (err) {
        if (err instanceof ImapRefusal) {
          const verb = after === 'seen' ? 'mark as seen' : after;
          throw new ProtocolError(`the server refused to ${verb} UIDs ${range}: ${err.responseText}`, { mailbox: this.mailbox.name, cause: err, serverResponse: err.responseText });
        }
        throw this.fail(err, after);
      }
    }
  }

  private async ensureMoveTarget(wire: ImapWire): Promise<void> {
    if (this.moveTargetReady) return;
    try {
      await wire.command(`CREATE ${quoted(this.serverName(this.mailbox.moveTo ?? ''))}`, 'CREATE');
    } catch (err) {
      if (!(err instanceof ImapRefusal && err.serverResponseCode === 'ALREADYEXISTS')) throw this.fail(err, `CREATE ${this.mailbox.moveTo ?? ''}`);
    }
    this.moveTargetReady = true;
  }

  async close(): Promise<void> {
    if (this.taken !== undefined) {
      await this.taken.logout().catch(() => undefined);
      return;
    }
    try {
      await this.client.logout();
    } catch {
      this.client.close();
    }
  }

  abort(): void {
    if (this.taken !== undefined) this.taken.destroy();
    else this.client.close();
  }

  private fail(err: unknown, what: string): MailpollError {
    return imapFailure(err, this.mailbox, what);
  }
}

/**
 * The commands that apply a post-fetch action to `range`, in order. .SILENT: the new flags are not
 * wanted back (RFC 3501 section 6.4.6). MOVE is UID MOVE (RFC 6851) where the server has it, else
 * what it stands for: COPY, then delete. Delete is \Deleted, then expunged: with UIDPLUS exactly
 * these UIDs (UID EXPUNGE, RFC 4315); without it, EXPUNGE removes every message flagged \Deleted in
 * the folder, as any client of such a server must.
 */
export function ackCommands(
  after: 'seen' | 'move' | 'delete',
  range: string,
  server: { move: boolean; uidplus: boolean },
  quotedTarget: string,
): { line: string; label: string }[] {
  const flag = (name: string) => ({ line: `UID STORE ${range} +FLAGS.SILENT (${name})`, label: 'STORE' });
  const remove = [flag('\\Deleted'), server.uidplus ? { line: `UID EXPUNGE ${range}`, label: 'EXPUNGE' } : { line: 'EXPUNGE', label: 'EXPUNGE' }];
  if (after === 'seen') return [flag('\\Seen')];
  if (after === 'delete') return remove;
  if (server.move) return [{ line: `UID MOVE ${range} ${quotedTarget}`, label: 'MOVE' }];
  return [{ line: `UID COPY ${range} ${quotedTarget}`, label: 'COPY' }, ...remove];
}

/** `1:5,9,12:13`: consecutive UIDs as ranges keep the command short for large batches. */
export function uidSet(candidates: readonly Candidate[]): string {
  const uids = candidates.map((c) => c.uid ?? 0).sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < uids.length; ) {
    let j = i;
    while (j + 1 < uids.length && uids[j + 1] === (uids[j] ?? 0) + 1) j++;
    parts.push(i === j ? String(uids[i]) : `${uids[i]}:${uids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** Consecutive small candidates together, each large one alone, in the given order. */
export function byTransfer(candidates: readonly Candidate[]): { large: boolean; candidates: Candidate[] }[] {
  const runs: { large: boolean; candidates: Candidate[] }[] = [];
  for (const c of candidates) {
    const large = c.size > LARGE_MESSAGE_BYTES;
    const last = runs[runs.length - 1];
    if (!large && last !== undefined && !last.large) last.candidates.push(c);
    else runs.push({ large, candidates: [c] });
  }
  return runs;
}
