/**
 * The MailSource port: what the fetch loop needs from a mailbox, whatever its protocol.
 * imap.ts and pop3/source.ts implement it; the loop in src/fetch never sees a protocol.
 */

/**
 * A message over this size (by its listed size) is a large message: the fetch loop fetches it only
 * once everything before it is committed, IMAP downloads it alone into one buffer, and the POP3
 * window never asks for it ahead. One size, so the three agree on which messages are alone.
 */
export const LARGE_MESSAGE_BYTES = 4 * 1024 * 1024;

/** One message the server offers, as listed before anything is fetched. */
export interface Candidate {
  /**
   * Stable identity on the server: IMAP `UIDVALIDITY:UID`, POP3 the UIDL (RFC 1939 section 7).
   * Together with the mailbox name it is the first layer of dedupe.
   */
  serverId: string;
  /** Size in octets as the server reports it (IMAP RFC822.SIZE, POP3 LIST). */
  size: number;
  /** IMAP UID, for the cursor; absent for POP3. */
  uid?: number;
}

/** Where a previous run stopped in an IMAP folder: the last UID stored under one UIDVALIDITY. */
export interface Cursor {
  uidValidity: string;
  lastUid: number;
}

export interface Listing {
  /**
   * The id space of this listing: IMAP's UIDVALIDITY as a decimal string, POP3 ''.
   * When it differs from the cursor's, the cursor no longer applies (RFC 3501 section 2.3.1.1).
   */
  uidValidity: string;
  /** Candidates in server order, oldest first. A finished array, never a live iterator. */
  candidates: Candidate[];
}

/** One message from stream(): its bytes, or why the server would not give them. */
export type Fetched = { candidate: Candidate; raw: Buffer; error?: undefined } | { candidate: Candidate; raw?: undefined; error: Error };

/**
 * What a poll remembers of a POP3 maildrop's listing from one poll to the next (migration 007): the
 * SHA-256 of the last listing in which every message was stored already, and how to record one.
 */
export interface ListingMemory {
  allKnown: string | undefined;
  remember(sha256: string): void;
}

export interface MailSession {
  /**
   * Lists the candidates, once per session; IMAP lists only UIDs above the cursor when its
   * UIDVALIDITY matches. `known` tells which server ids are stored already, so a source can skip work for them (POP3
   * asks sizes only of new messages); every candidate is still listed. `mailAhead` is called as
   * soon as the source knows there is new mail, before the listing is done (IMAP: SELECT shows UIDs
   * above the cursor), so that the analysis worker starts while the server lists. `memory` lets a
   * POP3 maildrop that keeps its mail skip a listing identical to one that was all stored already.
   */
  list(cursor: Cursor | null, known?: (serverIds: readonly string[]) => ReadonlySet<string>, mailAhead?: () => void, memory?: ListingMemory): Promise<Listing>;
  /**
   * The raw bytes of each candidate exactly as the server served them, yielded as they arrive, in
   * one server command where the protocol allows (IMAP UID FETCH of the whole set). A message the
   * server refuses or no longer has, or one over `maxBytes`, is yielded with an error; a broken
   * connection ends the iteration with a thrown error. The caller sends no other command to this
   * session until the iteration is over: imapflow deadlocks on a command sent inside a fetch.
   */
  stream(candidates: readonly Candidate[], maxBytes: number): AsyncIterable<Fetched>;
  /** Only the header block (IMAP BODY.PEEK[HEADER], POP3 TOP n 0), for oversize messages. */
  fetchHeaders(candidate: Candidate): Promise<Buffer>;
  /**
   * Applies the mailbox's post-fetch action (seen, move, delete, keep) to messages whose bytes
   * and tickets are already committed. Only ever called after that commit.
   */
  acknowledge(serverIds: readonly string[]): Promise<void>;
  /**
   * Ends the session cleanly. For POP3 this sends QUIT, which is when the server applies DELE
   * (RFC 1939 section 6): acknowledgements count as done only once close() resolved.
   */
  close(): Promise<void>;
  /** Drops the connection without any further command. Safe to call at any time. */
  abort(): void;
}

export interface MailSource {
  /** Connects, secures (TLS or STARTTLS), authenticates and opens the folder. */
  open(): Promise<MailSession>;
}
