import { describe, expect, it } from 'vitest';
import { planOwedAcks, selectNew } from '../../src/fetch/plan.js';
import { parentCandidates, chooseTicket } from '../../src/tickets/threading.js';

describe('planOwedAcks', () => {
  it('IMAP: acknowledges ids of the current UIDVALIDITY, gives up on the others', () => {
    const listing = { uidValidity: '9', candidates: [] };
    expect(planOwedAcks(['9:1', '8:2', '9:3'], listing, 'imap')).toEqual({ ack: ['9:1', '9:3'], unreachable: ['8:2'] });
  });
  it('POP3: acknowledges only UIDLs still listed', () => {
    const listing = { uidValidity: '', candidates: [{ serverId: 'a', size: 1 }, { serverId: 'c', size: 1 }] };
    expect(planOwedAcks(['a', 'b'], listing, 'pop3')).toEqual({ ack: ['a'], unreachable: ['b'] });
  });
});

describe('selectNew', () => {
  it('skips known ids, keeps server order, caps the run', () => {
    const c = (id: string) => ({ serverId: id, size: 1 });
    expect(selectNew([c('1'), c('2'), c('3'), c('4')], new Set(['2']), 2)).toEqual({ todo: [c('1'), c('3')], fresh: 3 });
  });
});

describe('threading', () => {
  it('orders parents: In-Reply-To, then References newest first, without self or repeats', () => {
    expect(parentCandidates({ messageId: 'me', inReplyTo: 'p', references: ['root', 'mid', 'p', 'me'] })).toEqual(['p', 'mid', 'root']);
  });
  it('takes the first candidate that is stored', () => {
    const known = new Map([['root', 3], ['mid', 5]]);
    expect(chooseTicket(['p', 'mid', 'root'], (id) => known.get(id))).toBe(5);
    expect(chooseTicket(['x'], (id) => known.get(id))).toBeUndefined();
  });
});
