import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { pollMailbox } from '../../src/fetch/poll-mailbox.js';
import { inThreadAnalyser } from '../../src/parse/analyse-pool.js';
import type { Candidate, MailSession, MailSource } from '../../src/sources/mail-source.js';
import { openDatabase } from '../../src/store/database.js';
import { MailStore } from '../../src/store/mail-store.js';
import { mailboxConfig } from '../fixtures/mailbox-config.js';
import { plainMessage, uniqueId } from '../fixtures/messages.js';

/**
 * Large messages in the fetch loop: one is fetched only once everything before it is committed,
 * so two of them are never in memory at once, and that wait never outlives a failed store side.
 */

const LARGE_BODY = `${'0123456789'.repeat(7)}\r\n`.repeat(80_000); // 5.6 MB, over the 4 MiB limit

/** A scripted mailbox that notes, as each message is fetched, how many messages are committed. */
function mailbox(sizes: ('small' | 'large')[], committed: () => number) {
  const messages = sizes.map((s, i) => plainMessage({ messageId: uniqueId(), subject: `m${i + 1}` }, s === 'large' ? LARGE_BODY : 'short\r\n'));
  const fetchedWhen: { uid: number; committed: number }[] = [];
  const source: MailSource = {
    async open(): Promise<MailSession> {
      return {
        async list() {
          return { uidValidity: '1', candidates: messages.map((raw, i) => ({ serverId: `1:${i + 1}`, uid: i + 1, size: raw.length })) };
        },
        async *stream(candidates: readonly Candidate[]) {
          for (const c of candidates) {
            fetchedWhen.push({ uid: c.uid ?? 0, committed: committed() });
            yield { candidate: c, raw: messages[(c.uid ?? 1) - 1] as Buffer };
          }
        },
        async fetchHeaders() {
          return Buffer.alloc(0);
        },
        async acknowledge() {},
        async close() {},
        abort() {},
      };
    },
  };
  return { source, fetchedWhen };
}

function setup() {
  const db = openDatabase(':memory:');
  const committed = () => (db.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number }).n;
  return { store: new MailStore(db), committed };
}

const MAILBOX = mailboxConfig({ maxMessageBytes: 50_000_000, after: 'keep' });

describe('pollMailbox with large messages', () => {
  it('fetches a large message only when every message before it is committed', async () => {
    const { store, committed } = setup();
    const { source, fetchedWhen } = mailbox(['small', 'small', 'large', 'large', 'small', 'large'], committed);
    const summary = await pollMailbox(MAILBOX, source, { store, analyser: inThreadAnalyser, log: pino({ level: 'silent' }) });
    expect(summary).toMatchObject({ ok: true, stored: 6 });
    for (const { uid, committed: before } of fetchedWhen.filter((f) => [3, 4, 6].includes(f.uid))) {
      expect(before, `committed when UID ${uid} was fetched`).toBe(uid - 1);
    }
    // Small ones still overlap with the store side: UID 2 is fetched before UID 1 is committed.
    expect(fetchedWhen.find((f) => f.uid === 2)?.committed).toBe(0);
  });

  it('does not wait for a store side that has failed: the poll ends with its error', async () => {
    const { committed } = setup();
    /** A disk that fails on the first commit: an environmental error, which ends the poll. */
    class FailingStore extends MailStore {
      override ingest(): never {
        throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
      }
    }
    const { source, fetchedWhen } = mailbox(['small', 'large', 'large'], committed);
    const store = new FailingStore(openDatabase(':memory:'));
    const summary = await pollMailbox(MAILBOX, source, { store, analyser: inThreadAnalyser, log: pino({ level: 'silent' }) });
    expect(summary).toMatchObject({ ok: false, stored: 0 });
    expect(summary.error).toContain('disk I/O error');
    // The large message waited for the first commit, which failed; nothing after it was fetched.
    expect(fetchedWhen.map((f) => f.uid)).toEqual([1, 2]);
  });

  it('lets an analysis worker go when every message is large (they are analysed in place), keeps it otherwise', async () => {
    for (const [sizes, expected] of [[['large', 'large'], 'release'], [['large', 'small'], 'warm']] as const) {
      const { store, committed } = setup();
      const calls: string[] = [];
      const analyser = { ...inThreadAnalyser, warm: () => void calls.push('warm'), release: async () => void calls.push('release') };
      const summary = await pollMailbox(MAILBOX, mailbox([...sizes], committed).source, { store, analyser, log: pino({ level: 'silent' }) });
      expect(summary).toMatchObject({ ok: true, stored: 2 });
      expect(calls, sizes.join(', ')).toEqual([expected]);
    }
  });
});
