import type { Candidate, Listing } from '../sources/mail-source.js';

/**
 * Pure decisions of the per-mailbox loop, apart from I/O so they are tested without a server.
 */

/**
 * Splits the acknowledgements an earlier run still owes into the ones the server can still take
 * and the ones it can no longer address (the message is gone, or, on IMAP, its UIDVALIDITY
 * changed: the mail returns under a new UID and the content-hash dedupe catches it).
 */
export function planOwedAcks(
  owed: readonly string[],
  listing: Listing,
  protocol: 'imap' | 'pop3',
): { ack: string[]; unreachable: string[] } {
  const ack: string[] = [];
  const unreachable: string[] = [];
  if (protocol === 'imap') {
    const prefix = `${listing.uidValidity}:`;
    for (const id of owed) (id.startsWith(prefix) ? ack : unreachable).push(id);
  } else {
    const present = new Set(listing.candidates.map((c) => c.serverId));
    for (const id of owed) (present.has(id) ? ack : unreachable).push(id);
  }
  return { ack, unreachable };
}

/** The candidates still to fetch this run: not seen before, oldest first, at most `max`. */
export function selectNew(candidates: readonly Candidate[], known: ReadonlySet<string>, max: number): { todo: Candidate[]; fresh: number } {
  const fresh = candidates.filter((c) => !known.has(c.serverId));
  return { todo: fresh.slice(0, max), fresh: fresh.length };
}
