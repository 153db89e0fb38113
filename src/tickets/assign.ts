import type { MessageClass } from '../parse/classify.js';

/** What a class of message may do to tickets: open one, only join an existing one, or neither. */
export type ClassPolicy = 'open' | 'thread' | 'store';

export interface TicketPolicy {
  autoReplies: ClassPolicy;
  bounces: ClassPolicy;
}

/** Tickets the message could belong to, found by the store, in the order they were looked up. */
export interface ThreadEvidence {
  /** By In-Reply-To / References (newest reference first). */
  byReference: number | undefined;
  /** By the ticket token in the subject, e.g. `[#1001]`. */
  byToken: number | undefined;
  /** Bounces: by the Message-ID of the original found inside the report. */
  byBouncedOriginal: number | undefined;
}

export type Assignment = { action: 'thread'; ticketId: number; via: keyof ThreadEvidence } | { action: 'open' } | { action: 'none' };

/**
 * Which ticket a message goes to. References win over the subject token (they are exact), the
 * bounced original comes last. A message that threads nowhere opens a ticket only if its class
 * may: an auto-reply or a bounce never starts a ticket by default, which is what stops mail loops
 * between two auto-responders.
 */
export function assignTicket(cls: MessageClass, evidence: ThreadEvidence, policy: TicketPolicy): Assignment {
  const rule: ClassPolicy = cls === 'auto-reply' ? policy.autoReplies : cls === 'bounce' ? policy.bounces : 'open';
  if (rule === 'store') return { action: 'none' };
  for (const via of ['byReference', 'byToken', 'byBouncedOriginal'] as const) {
    const ticketId = evidence[via];
    if (ticketId !== undefined) return { action: 'thread', ticketId, via };
  }
  return rule === 'open' ? { action: 'open' } : { action: 'none' };
}
