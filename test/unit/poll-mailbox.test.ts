import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConnectionError, ProtocolError } from '../../src/errors.js';
import { MAX_MESSAGE_ATTEMPTS, pollMailbox } from '../../src/fetch/poll-mailbox.js';
import { inThreadAnalyser } from '../../src/parse/analyse-pool.js';
import type { Candidate, Cursor, MailSession, MailSource } from '../../src/sources/mail-source.js';
import { openDatabase } from '../../src/store/database.js';
import { MailStore } from '../../src/store/mail-store.js';
import { mailboxConfig } from '../fixtures/mailbox-config.js';
import { plainMessage, uniqueId } from '../fixtures/messages.js';

/**
 * The fetch loop's own decisions (retry, quarantine, cursor, caps, shutdown) against a scripted
 * in-memory mailbox. What IMAP and POP3 servers do is proved against Dovecot elsewhere.
 */
class FakeMailbox implements MailSource {
  messages = new Map<number, Buffer>();
  failing = new Map<number, () => Error>();
  acknowledged: string[] = [];
  onFetch: (uid: number) => void = () => {};

  add(n: number): void {
    for (let i = 0; i < n; i++) this.messages.set(this.messages.size + 1, plainMessage({ messageId: uniqueId(), subject: `m${this.messages.size + 1}` }));
  }

  async open(): Promise<MailSession> {
    const box = this;
    return {
      async list(cursor: Cursor | null) {
        const from = cursor?.uidValidity === '1' ? cursor.lastUid + 1 : 1;
        const candidates: Candidate[] = [...box.messages.entries()]
          .filter(([uid]) => uid >= from)
          .map(([uid, raw]) => ({ serverId: `1:${uid}`, uid, size: raw.length }));
        return { uidValidity: '1', candidates };
      },
      async *stream(candidates: readonly Candidate[]) {
        for (const c of candidates) {
          box.onFetch(c.uid ?? 0);
          const fail = box.failing.get(c.uid ?? 0);
          const error = fail?.();
          if (error instanceof ProtocolError) yield { candidate: c, error };
          else if (error) throw error;
          else yield { candidate: c, raw: box.messages.get(c.uid ?? 0) ?? Buffer.alloc(0) };
        }
      },
      async fetchHeaders(c: Candidate) {
        const raw = box.messages.get(c.uid ?? 0) ?? Buffer.alloc(0);
        return raw.subarray(0, raw.indexOf('\r\n\r\n') + 4);
      },
      async acknowledge(ids: readonly string[]) {
        box.acknowledged.push(...ids);
      },
      async close() {},
      abort() {},
    };
  }
}

const MAILBOX = mailboxConfig();

function setup() {
  const db = openDatabase(':memory:');
  const store = new MailStore(db);
  const deps = { store, analyser: inThreadAnalyser, log: pino({ level: 'silent' }) };
  const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
  return { db, store, deps, count };
}

describe('pollMailbox', () => {
  it('retries a failing message a bounded number of times, then quarantines it; it blocks nothing behind it', async () => {
    const { store, deps, count } = setup();
    const box = new FakeMailbox();
    box.add(5);
    box.failing.set(2, () => new ProtocolError('NO [SERVERBUG] cannot fetch'));

    for (let run = 1; run < MAX_MESSAGE_ATTEMPTS; run++) {
      const s = await pollMailbox(MAILBOX, box, deps);
      expect(s).toMatchObject({ ok: false, errorCode: 'MESSAGE', messageFailures: 1, quarantined: 0 });
      // The messages behind the failing one are stored, but the cursor waits before it.
      expect(count('SELECT COUNT(*) AS n FROM messages')).toBe(4);
      expect(store.cursor('box')).toEqual({ uidValidity: '1', lastUid: 1 });
    }
    const last = await pollMailbox(MAILBOX, box, deps);
    expect(last).toMatchObject({ quarantined: 1, stored: 0 });
    expect(count("SELECT COUNT(*) AS n FROM receipts WHERE outcome = 'quarantined'")).toBe(1);
    expect(box.acknowledged).not.toContain('1:2');
    expect(store.cursor('box')).toEqual({ uidValidity: '1', lastUid: 5 });

    box.add(1);
    expect(await pollMailbox(MAILBOX, box, deps)).toMatchObject({ ok: true, stored: 1 });
  });

  it('a connection lost during one message ends the run but counts toward that message only', async () => {
    const { deps, count } = setup();
    const box = new FakeMailbox();
    box.add(3);
    box.failing.set(2, () => new ConnectionError('connection reset'));
    const s = await pollMailbox(MAILBOX, box, deps);
    expect(s).toMatchObject({ ok: false, errorCode: 'CONNECTION', stored: 1 });
    expect(count('SELECT attempts AS n FROM message_failures')).toBe(1);
  });

  it('stops at maxBytes for the run and takes the rest next run', async () => {
    const { deps } = setup();
    const box = new FakeMailbox();
    box.add(6);
    const size = box.messages.get(1)?.length ?? 0;
    const capped = { ...MAILBOX, maxBytes: Math.floor(size * 2.5) };
    expect((await pollMailbox(capped, box, deps)).stored).toBe(3);
    expect((await pollMailbox(capped, box, deps)).stored).toBe(3);
  });

  it('on shutdown commits and acknowledges what is in hand, drops what was fetched ahead, and the next run takes the rest', async () => {
    const { deps, count } = setup();
    const box = new FakeMailbox();
    box.add(5);
    const controller = new AbortController();
    box.onFetch = (uid) => {
      if (uid === 2) controller.abort();
    };
    const s = await pollMailbox(MAILBOX, box, { ...deps, signal: controller.signal });
    expect(s.ok).toBe(true);
    expect(s.stored).toBeGreaterThanOrEqual(1);
    expect(s.stored).toBeLessThanOrEqual(2);
    expect(box.acknowledged).toHaveLength(s.stored);
    expect(count('SELECT COUNT(*) AS n FROM receipts WHERE acknowledged_at IS NULL')).toBe(0);
    box.onFetch = () => {};
    expect((await pollMailbox(MAILBOX, box, deps)).stored).toBe(5 - s.stored);
    expect(count('SELECT COUNT(*) AS n FROM messages')).toBe(5);
  });
});
