import type { ParsedMessage } from '../parse/types.js';

/**
 * The Message-IDs a message answers, most specific first: In-Reply-To, then References from the
 * newest (last) to the oldest (RFC 5322 section 3.6.4). The first one already stored decides the
 * ticket; a message that names none opens a new ticket.
 */
export function parentCandidates(message: Pick<ParsedMessage, 'inReplyTo' | 'references' | 'messageId'>): string[] {
  const ordered = [message.inReplyTo, ...[...message.references].reverse()];
  const seen = new Set<string>();
  const out: string[] = [];
  for (const id of ordered) {
    // A message that names itself (some broken clients do) must not thread onto its own copy.
    if (id === undefined || id === message.messageId || seen.has(id)) continue;
    seen.add(id);
    out.push(id);
  }
  return out;
}

/** Picks the ticket for a message: the first candidate that `ticketOf` knows, else undefined (new). */
export function chooseTicket(candidates: readonly string[], ticketOf: (messageId: string) => number | undefined): number | undefined {
  for (const id of candidates) {
    const ticket = ticketOf(id);
    if (ticket !== undefined) return ticket;
  }
  return undefined;
}
