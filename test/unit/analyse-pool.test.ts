import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Analyser } from '../../src/parse/analyse-pool.js';
import { analyse } from '../../src/parse/analyse.js';
import { openDatabase } from '../../src/store/database.js';
import { attachmentMessage, plainMessage } from '../fixtures/messages.js';
import { tempDir } from '../support/mailpoll.js';

// The worker runs the built code (vitest does not run inside worker threads): `npm test` builds first.
const BUILT = '../../dist/parse/analyse-pool.js';
const { createAnalyser } = (await import(BUILT)) as typeof import('../../src/parse/analyse-pool.js');

describe('analysis worker', () => {
  let analyser: Analyser | undefined;
  afterEach(async () => {
    await analyser?.close();
    analyser = undefined;
  });

  it('gives what analysing in place gives, attachments as Buffers with their digest', async () => {
    analyser = createAnalyser(1);
    for (const raw of [plainMessage(), attachmentMessage()]) {
      const [there, here] = await Promise.all([analyser.analyse(raw), analyse(raw)]);
      expect(there.dedupeHash).toBe(here.dedupeHash);
      expect(there.parsed.text).toBe(here.parsed.text);
      expect(there.parsed.attachments.map((a) => [Buffer.isBuffer(a.content), a.content.toString('base64'), a.sha256]))
        .toEqual(here.parsed.attachments.map((a) => [true, a.content.toString('base64'), a.sha256]));
    }
  });

  it('checkpoints the WAL into the database file on the worker, and closes its connection', async () => {
    const file = join(tempDir('mailpoll-ckpt-'), 'm.db');
    const db = openDatabase(file);
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE blobs (b BLOB)');
    db.prepare('INSERT INTO blobs VALUES (?)').run(Buffer.alloc(4 * 1024 * 1024, 7));
    const before = statSync(file).size;
    expect(before).toBeLessThan(1024 * 1024); // the 4 MB are in the WAL only

    analyser = createAnalyser(1);
    await analyser.analyse(plainMessage()); // starts the worker
    analyser.checkpoint?.(file);
    const deadline = Date.now() + 10_000;
    while (statSync(file).size < 4 * 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(statSync(file).size).toBeGreaterThan(4 * 1024 * 1024);

    await analyser.close();
    analyser = undefined;
    // The worker's connection is gone: the writer can restart the WAL and checkpoint it itself.
    db.prepare('INSERT INTO blobs VALUES (?)').run(Buffer.alloc(10, 1));
    expect(db.pragma('wal_checkpoint(TRUNCATE)', { simple: false })).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
    db.close();
  });
});
