import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { tempDir } from '../support/mailpoll.js';

// The worker runs the built code (vitest does not run inside worker threads): `npm test` builds first.
const BUILT = '../../dist/store/wal-checkpoints.js';
const { walCheckpoints } = (await import(BUILT)) as typeof import('../../src/store/wal-checkpoints.js');

const until = async (done: () => boolean) => {
  const deadline = Date.now() + 10_000;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
};

describe('WAL checkpoints on their own thread', () => {
  it('copies the WAL into the database file while the writer goes on, and closes its connection', async () => {
    const file = join(tempDir('mailpoll-ckpt-'), 'm.db');
    const db = openDatabase(file);
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE blobs (b BLOB)');
    const insert = db.prepare('INSERT INTO blobs VALUES (?)');
    insert.run(Buffer.alloc(4 * 1024 * 1024, 7));
    expect(statSync(file).size).toBeLessThan(1024 * 1024); // the 4 MB are in the WAL only

    let unavailable = 0;
    const checkpoints = walCheckpoints(file, () => unavailable++);
    checkpoints.afterCommit();
    await until(() => statSync(file).size > 4 * 1024 * 1024);
    expect(statSync(file).size).toBeGreaterThan(4 * 1024 * 1024);

    // Requests while one runs become one more: the last commit's pages reach the file too.
    for (let i = 0; i < 3; i++) {
      insert.run(Buffer.alloc(4 * 1024 * 1024, i));
      checkpoints.afterCommit();
    }
    await until(() => statSync(file).size > 16 * 1024 * 1024);
    expect(statSync(file).size).toBeGreaterThan(16 * 1024 * 1024);

    await checkpoints.close();
    expect(unavailable).toBe(0);
    // The thread's connection is gone: the writer can restart the WAL and checkpoint it itself.
    insert.run(Buffer.alloc(10, 1));
    expect(db.pragma('wal_checkpoint(TRUNCATE)', { simple: false })).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
    db.close();
  });

  it('says so when the thread dies, so the writer checkpoints itself again', async () => {
    const dir = tempDir('mailpoll-ckpt-');
    const broken = join(dir, 'broken-worker.mjs');
    writeFileSync(broken, "throw new Error('cannot start');\n");
    let unavailable = 0;
    const checkpoints = walCheckpoints(join(dir, 'm.db'), () => unavailable++, pathToFileURL(broken));
    checkpoints.afterCommit();
    await until(() => unavailable > 0);
    expect(unavailable).toBe(1);
    checkpoints.afterCommit(); // nothing more is sent to a dead thread
    await checkpoints.close();
    expect(unavailable).toBe(1);
  });
});
