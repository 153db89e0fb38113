/**
 * MailStore.knownServerIds as a POP3 poll asks it: with the whole maildrop's UIDLs on every poll
 * of a mailbox that keeps its mail. Whichever way it is answered (one scan of the mailbox's
 * receipts for a long list, index lookups for a short one or for a mailbox with far more receipts
 * than asked), the answer is exactly the listed ids that have a receipt in that mailbox.
 */
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { MailStore } from '../../src/store/mail-store.js';

function storeWith(receipts: Record<string, readonly string[]>): MailStore {
  const store = new MailStore(openDatabase(':memory:'));
  // recordOversize writes a bare receipt: the cheapest way to have many.
  for (const [mailbox, ids] of Object.entries(receipts)) store.batch(() => ids.forEach((id) => store.recordOversize(mailbox, id, undefined, '')));
  return store;
}

const ids = (prefix: string, n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `${prefix}${from + i}`);

describe('knownServerIds', () => {
  it('answers a long list (a kept maildrop) with exactly the listed ids this mailbox has', () => {
    const store = storeWith({ keep: ids('u', 1000), 'keep-2': ids('u', 2000), kee: ids('v', 10) });
    const asked = [...ids('u', 1000, 100), 'v1', 'u5', 'u5'];
    const known = store.knownServerIds('keep', asked);
    expect(known).toEqual(new Set([...ids('u', 900, 100), 'u5']));
  });

  it('answers a short list by lookups, as exactly', () => {
    const store = storeWith({ keep: ids('u', 1000), other: ids('w', 5) });
    expect(store.knownServerIds('keep', ['u1', 'u999', 'u1000', 'w1'])).toEqual(new Set(['u1', 'u999']));
    expect(store.knownServerIds('keep', [])).toEqual(new Set());
  });

  it('falls back to lookups when the mailbox has far more receipts than listed ids (after: delete)', () => {
    const store = storeWith({ deleted: ids('d', 5000) });
    const asked = [...ids('d', 50, 4990), ...ids('new', 50)];
    expect(store.knownServerIds('deleted', asked)).toEqual(new Set(ids('d', 10, 4990)));
  });

  it('gives the same answer either way around the scan limit', () => {
    for (const receipts of [255, 256, 257, 1000]) {
      const store = storeWith({ m: ids('x', receipts) });
      const asked = ids('x', 64, 200); // 64 ids: scanned up to 256 receipts, else looked up
      const expected = new Set(asked.filter((id) => Number(id.slice(1)) < receipts));
      expect(store.knownServerIds('m', asked), `${receipts} receipts`).toEqual(expected);
    }
  });
});
