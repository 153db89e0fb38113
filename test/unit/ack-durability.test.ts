import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { pollMailbox } from '../../src/fetch/poll-mailbox.js';
import { inThreadAnalyser } from '../../src/parse/analyse-pool.js';
import type { Candidate, MailSession, MailSource } from '../../src/sources/mail-source.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { MailStore } from '../../src/store/mail-store.js';
import { mailboxConfig } from '../fixtures/mailbox-config.js';
import { plainMessage, uniqueId } from '../fixtures/messages.js';

/**
 * A fetch run commits without waiting for the disk (synchronous=NORMAL, see run-fetch.ts), so
 * what stands between a message and its acknowledgement on the server is the fsync of the WAL in
 * MailStore.syncWal. These tests hold the fetch loop to it on a real database file: no message is
 * acknowledged before a sync that started after its commit has finished, and a group whose commit
 * rolled back is never acknowledged at all.
 */

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function fileDb(): Db {
  const dir = mkdtempSync(join(tmpdir(), 'mailpoll-ack-'));
  dirs.push(dir);
  const db = openDatabase(join(dir, 'mailpoll.db'));
  db.pragma('synchronous = NORMAL');
  return db;
}

/** `count` small messages, served in segments; `beforeSegment` may hold a segment back, or drop it (false). */
function source(count: number, events: string[], beforeSegment: (first: number) => Promise<boolean> = async () => true): MailSource & { acknowledged: string[] } {
  const messages = Array.from({ length: count }, (_, i) => plainMessage({ messageId: uniqueId(), subject: `m${i + 1}` }));
  const acknowledged: string[] = [];
  return {
    acknowledged,
    async open(): Promise<MailSession> {
      return {
        async list() {
          return { uidValidity: '1', candidates: messages.map((raw, i) => ({ serverId: `1:${i + 1}`, uid: i + 1, size: raw.length })) };
        },
        async *stream(candidates: readonly Candidate[]) {
          if (!(await beforeSegment(candidates[0]?.uid ?? 0))) return;
          for (const c of candidates) yield { candidate: c, raw: messages[(c.uid ?? 1) - 1] as Buffer };
        },
        async fetchHeaders() {
          return Buffer.alloc(0);
        },
        async acknowledge(ids: readonly string[]) {
          events.push(`ack ${ids.join(',')}`);
          acknowledged.push(...ids);
        },
        async close() {},
        abort() {},
      };
    },
  };
}

/** Records commits (with the server ids they stored) and WAL syncs, in order. */
class RecordingStore extends MailStore {
  private readonly seen = new Set<string>();
  constructor(
    private readonly database: Db,
    private readonly events: string[],
    private readonly failOnBatch?: number,
    private readonly onFail: () => void = () => {},
  ) {
    super(database);
  }

  private batches = 0;

  override batch<T>(fn: () => T): T {
    const n = ++this.batches;
    let result: T;
    try {
      result = super.batch(() => {
        const r = fn();
        if (n === this.failOnBatch) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
        return r;
      });
    } catch (err) {
      this.onFail();
      throw err;
    }
    const ids = (this.database.prepare('SELECT server_id FROM receipts').pluck().all() as string[]).filter((id) => !this.seen.has(id));
    for (const id of ids) this.seen.add(id);
    if (ids.length > 0) this.events.push(`commit ${ids.join(',')}`);
    return result;
  }

  override async syncWal(): Promise<void> {
    this.events.push('sync start');
    await super.syncWal();
    this.events.push('sync done');
  }
}

const MAILBOX = mailboxConfig({ after: 'seen', maxMessages: 10_000 });

describe('acknowledgements wait for the disk', () => {
  it('acknowledges a message only after a WAL sync that started after its commit has finished', async () => {
    const events: string[] = [];
    const db = fileDb();
    const store = new RecordingStore(db, events);
    expect(store.walFile).toBe(`${db.name}-wal`);
    const box = source(250, events);
    const summary = await pollMailbox(MAILBOX, box, { store, analyser: inThreadAnalyser, log: pino({ level: 'silent' }) });
    expect(summary).toMatchObject({ ok: true, stored: 250 });
    expect(box.acknowledged).toHaveLength(250);

    for (const id of box.acknowledged) {
      const committedAt = events.findIndex((e) => e.startsWith('commit ') && e.slice(7).split(',').includes(id));
      const ackedAt = events.findIndex((e) => e.startsWith('ack ') && e.slice(4).split(',').includes(id));
      expect(committedAt, `${id} committed`).toBeGreaterThanOrEqual(0);
      const syncStart = events.indexOf('sync start', committedAt);
      const syncDone = events.indexOf('sync done', syncStart);
      expect(syncStart, `a sync started after ${id} was committed`).toBeGreaterThan(committedAt);
      expect(syncDone, `${id} acknowledged after that sync finished`).toBeLessThan(ackedAt);
    }
    db.close();
  });

  it('never acknowledges a group whose commit rolled back, even when the network side reaches a segment boundary after it', async () => {
    const events: string[] = [];
    const db = fileDb();
    let atThirdSegment!: () => void;
    const parked = new Promise<void>((resolve) => (atThirdSegment = resolve));
    let secondFailed!: () => void;
    const failed = new Promise<void>((resolve) => (secondFailed = resolve));
    // The second group's commit fails: an environmental error, which ends the poll.
    const store = new RecordingStore(db, events, 2, () => secondFailed());
    // The network side is parked at its third segment until that commit has failed; then the
    // segment delivers nothing, and it goes straight on to the next segment boundary, where it
    // acknowledges what it was given, and asks for the fourth segment.
    const segments: number[] = [];
    const box = source(400, events, async (first) => {
      segments.push(first);
      if (first !== 201) return true;
      atThirdSegment();
      await failed;
      return false;
    });
    // Nothing is committed before the network side is parked there.
    const analyser = { analyse: async (raw: Buffer) => (await parked, inThreadAnalyser.analyse(raw)), close: async () => {} };
    const summary = await pollMailbox(MAILBOX, box, { store, analyser, log: pino({ level: 'silent' }) });
    expect(summary).toMatchObject({ ok: false });
    expect(summary.error).toContain('disk I/O error');
    expect(segments).toEqual([1, 101, 201, 301]);
    // Only what is stored may have been acknowledged: the first group at most, none of the second.
    const stored = new Set(db.prepare('SELECT server_id FROM receipts').pluck().all() as string[]);
    expect(stored.size).toBeGreaterThan(0);
    expect(box.acknowledged.filter((id) => !stored.has(id))).toEqual([]);
    db.close();
  });
});
