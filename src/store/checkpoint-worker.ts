import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';

/**
 * Worker side of wal-checkpoints.ts: copies the WAL into the database file, by a connection of its
 * own, while the main thread goes on committing. It is a thread of its own, not the analysis
 * worker's job, because a checkpoint is mostly waiting for the disk (an fsync of the WAL before,
 * one of the database file after): on the analysis worker, that wait held up the parsing the
 * commits were waiting for.
 */
type Request = { checkpoint: string } | { close: true };

let connection: { file: string; db: BetterSqlite3.Database } | undefined;

/** PASSIVE never waits for a lock and never blocks the writer (sqlite.org/wal.html#ckpt). */
function checkpoint(file: string): void {
  try {
    if (connection?.file !== file) {
      connection?.db.close();
      const Database = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
      // timeout 0: this connection never waits for a lock, it tries again after the next commit.
      connection = { file, db: new Database(file, { fileMustExist: true, timeout: 0 }) };
    }
    connection.db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or gone: the next request, or the writer's own checkpoint when it closes, catches up.
  }
}

parentPort?.on('message', (request: Request) => {
  if ('close' in request) {
    // Closed before the thread ends: a thread ended under an open SQLite connection would leave
    // the process's file locks in an unknown state.
    connection?.db.close();
    connection = undefined;
    parentPort?.postMessage({ closed: true });
    return;
  }
  checkpoint(request.checkpoint);
  parentPort?.postMessage({ done: true });
});
