import { imapClientOptions } from './imap-options.js';
import type { ImapFlow } from 'imapflow';
import { asCredentials, chooseImapMechanism, type Credentials } from '../auth/login.js';
import type { MailboxConfig } from '../config/types.js';
import { MailpollError, ProtocolError } from '../errors.js';
import { downloadMessage } from './imap-download.js';
import { folderFailure, imapFailure, type ImapErrorShape } from './imap-errors.js';
import { LARGE_MESSAGE_BYTES, type Candidate, type Cursor, type Fetched, type Listing, type MailSession, type MailSource } from './mail-source.js';
import { tlsOptionsFor } from './tls-options.js';

/** Acknowledgements go out in chunks so no command line grows past what servers accept. */
const ACK_CHUNK = 500;

/**
 * IMAP through imapflow (loaded lazily: a cron tick with nothing due never pays for it).
 * The server id is `UIDVALIDITY:UID`; candidates are the UIDs above the stored cursor.
 */
export function imapSource(mailbox: MailboxConfig, password: string | Credentials): MailSource {
  const credentials = asCredentials(password);
  return {
    async open(): Promise<MailSession> {
      const { ImapFlow } = await import('imapflow');
      const tls = await tlsOptionsFor(mailbox);
      const client = new ImapFlow(imapClientOptions(mailbox, credentials, tls));
      // imapflow emits 'error' on socket failures; unhandled it would crash the whole run.
      let socketError: unknown;
      client.on('error', (err: unknown) => {
        socketError = err;
      });
      try {
        chooseImapMechanism(client, mailbox, credentials);
        await client.connect();
      } catch (err) {
        client.close();
        throw imapFailure(err, mailbox, 'connect');
      }
      return new ImapSession(client, mailbox, () => socketError);
    },
  };
}

class ImapSession implements MailSession {
  private uidValidity = '';
  private moveTargetReady = false;

  constructor(
    private readonly client: ImapFlow,
    private readonly mailbox: MailboxConfig,
    private readonly lastSocketError: () => unknown,
  ) {}

  async list(cursor: Cursor | null, _known?: unknown, mailAhead?: () => void): Promise<Listing> {
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
    let rows;
    try {
      // fetchAll collects the whole answer before returning: no command is sent inside a live fetch.
      rows = await this.client.fetchAll(`${from}:*`, { uid: true, size: true }, { uid: true });
    } catch (err) {
      throw this.fail(err, 'FETCH');
    }
    // `N:*` always includes the highest UID even when it is below N (RFC 3501 section 6.4.8).
    const candidates: Candidate[] = rows
      .filter((m) => m.uid >= from)
      .sort((a, b) => a.uid - b.uid)
      .map((m) => ({ serverId: `${this.uidValidity}:${m.uid}`, uid: m.uid, size: m.size ?? 0 }));
    return { uidValidity: this.uidValidity, candidates };
  }

  /**
   * Small messages in one UID FETCH per run of them; each large one on its own with
   * downloadMessage(), which holds it once instead of twice. In server order either way, and each
   * command finishes before the next starts (imapflow deadlocks on a command inside a fetch).
   */
  async *stream(candidates: readonly Candidate[], maxBytes: number): AsyncIterable<Fetched> {
    for (const run of byTransfer(candidates)) {
      if (run.large) yield await this.downloadOne(run.candidates[0] as Candidate, maxBytes);
      else yield* this.fetchSet(run.candidates, maxBytes);
    }
  }

  private async *fetchSet(candidates: readonly Candidate[], maxBytes: number): AsyncIterable<Fetched> {
    const byUid = new Map(candidates.map((c) => [c.uid, c]));
    const seen = new Set<number>();
    try {
      // One UID FETCH for the set; imapflow asks for BODY.PEEK[], so fetching never sets \Seen
      // (RFC 3501 section 6.4.5). Messages are yielded as they arrive, before the FETCH completes.
      for await (const m of this.client.fetch(uidSet(candidates), { uid: true, source: true }, { uid: true })) {
        const candidate = byUid.get(m.uid);
        if (candidate === undefined || !m.source || seen.has(m.uid)) continue;
        seen.add(m.uid);
        yield m.source.length > maxBytes ? { candidate, error: this.tooLarge(candidate) } : { candidate, raw: m.source };
      }
    } catch (err) {
      throw this.fail(err, 'FETCH');
    }
    for (const candidate of candidates) {
      if (candidate.uid !== undefined && !seen.has(candidate.uid)) yield { candidate, error: this.vanished(candidate) };
    }
  }

  private async downloadOne(candidate: Candidate, maxBytes: number): Promise<Fetched> {
    let result;
    try {
      result = await downloadMessage(this.client, candidate.uid ?? 0, candidate.size, maxBytes);
    } catch (err) {
      throw this.fail(err, 'FETCH');
    }
    if (result.kind === 'vanished') return { candidate, error: this.vanished(candidate) };
    if (result.kind === 'too-large') return { candidate, error: this.tooLarge(candidate) };
    if (result.kind === 'runaway') {
      return { candidate, error: new ProtocolError(`the server kept sending message UID ${candidate.uid} past twice its size`, { mailbox: this.mailbox.name }) };
    }
    return { candidate, raw: result.raw };
  }

  private tooLarge(c: Candidate): ProtocolError {
    return new ProtocolError(`message UID ${c.uid} is larger than maxMessageBytes`, { mailbox: this.mailbox.name });
  }

  private vanished(c: Candidate): ProtocolError {
    return new ProtocolError(`message UID ${c.uid} vanished before it could be fetched`, { mailbox: this.mailbox.name });
  }

  async fetchHeaders(candidate: Candidate): Promise<Buffer> {
    let message;
    try {
      message = await this.client.fetchOne(String(candidate.uid), { uid: true, headers: true }, { uid: true });
    } catch (err) {
      throw this.fail(err, 'FETCH');
    }
    if (!message || !message.headers) {
      throw new ProtocolError(`message UID ${candidate.uid} vanished before its headers could be fetched`, { mailbox: this.mailbox.name });
    }
    return message.headers;
  }

  async acknowledge(serverIds: readonly string[]): Promise<void> {
    const after = this.mailbox.after;
    if (after === 'keep' || serverIds.length === 0) return;
    const uids = serverIds
      .filter((id) => id.startsWith(`${this.uidValidity}:`))
      .map((id) => Number(id.slice(this.uidValidity.length + 1)));
    if (after === 'move') await this.ensureMoveTarget();
    for (let i = 0; i < uids.length; i += ACK_CHUNK) {
      const range = uids.slice(i, i + ACK_CHUNK).join(',');
      let ok: unknown;
      try {
        // .SILENT: the new flags are not wanted back (RFC 3501 section 6.4.6). With CONDSTORE the
        // server still reports each new MODSEQ (RFC 7162; Dovecot does); without it, nothing comes back.
        if (after === 'seen') ok = await this.client.messageFlagsAdd(range, ['\\Seen'], { uid: true, silent: true });
        else if (after === 'move') ok = await this.client.messageMove(range, this.mailbox.moveTo ?? '', { uid: true });
        // With UIDPLUS imapflow expunges exactly these UIDs (UID EXPUNGE, RFC 4315).
        else if (after === 'delete') ok = await this.client.messageDelete(range, { uid: true });
      } catch (err) {
        throw this.fail(err, after);
      }
      if (ok === false) {
        const cause = this.lastSocketError();
        if (cause) throw this.fail(cause, after);
        throw new ProtocolError(`the server refused to ${after === 'seen' ? 'mark as seen' : after} UIDs ${range}`, { mailbox: this.mailbox.name });
      }
    }
  }

  private async ensureMoveTarget(): Promise<void> {
    if (this.moveTargetReady) return;
    const target = this.mailbox.moveTo ?? '';
    try {
      await this.client.mailboxCreate(target);
    } catch (err) {
      if ((err as ImapErrorShape).serverResponseCode !== 'ALREADYEXISTS') throw this.fail(err, `CREATE ${target}`);
    }
    this.moveTargetReady = true;
  }

  async close(): Promise<void> {
    try {
      await this.client.logout();
    } catch {
      this.client.close();
    }
  }

  abort(): void {
    this.client.close();
  }

  private fail(err: unknown, what: string): MailpollError {
    return imapFailure(err, this.mailbox, what);
  }
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
