import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';
import { StoreError } from '../errors.js';

export type Db = BetterSqlite3.Database;

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

/**
 * Opens (creating if needed) the database and brings its schema up to date.
 * WAL lets `status` read while a fetch writes; busy_timeout lets two cron runs share the file.
 */
export function openDatabase(file: string): Db {
  const Database = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
  let db: Db;
  try {
    const created = file !== ':memory:' && !existsSync(file);
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    db = new Database(file);
    // It holds every mail and cached OAuth2 tokens: owner only, whatever the umask. SQLite gives
    // the -wal and -shm files the mode of the database file.
    if (created) chmodSync(file, 0o600);
    db.pragma('busy_timeout = 10000');
    // Mail is stored whole (raw bytes, attachments): larger pages mean a quarter of the page writes
    // for the same bytes. Takes effect only when the file is created, before WAL is switched on.
    db.pragma('page_size = 16384');
    enableWal(db);
    db.pragma('cache_size = -32768');
    db.pragma('foreign_keys = ON');
    // NORMAL is durable across process crashes in WAL mode; FULL also survives power loss at one
    // fsync per commit. FULL for everything but a fetch run, which syncs the WAL itself, off the
    // main thread, before it acknowledges anything on the server (run-fetch.ts).
    db.pragma('synchronous = FULL');
    migrate(db);
  } catch (cause) {
    throw new StoreError(`cannot open database ${file}: ${(cause as Error).message}`, { cause });
  }
  return db;
}

/**
 * WAL is a property of the file, set when it is created. Switching to it needs the file to itself,
 * and when another connection has it open SQLite answers SQLITE_BUSY at once, busy_timeout or not:
 * two runs started together on a new database file (two cron lines, cron and a person) made one
 * of them fail with "database is locked". The other one is switching it meanwhile: wait a little
 * and ask again, within the same 10 s as busy_timeout.
 */
function enableWal(db: Db, timeoutMs = 10_000): void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/** Applies numbered `.sql` files above PRAGMA user_version, each in its own transaction. */
export function migrate(db: Db, dir = MIGRATIONS_DIR): void {
  const files = readdirSync(dir)
    .map((name) => ({ name, version: Number.parseInt(name, 10) }))
    .filter((f) => f.name.endsWith('.sql') && Number.isInteger(f.version))
    .sort((a, b) => a.version - b.version);
  const apply = db.transaction((sql: string, version: number) => {
    // Re-read inside the write lock: another process may have migrated meanwhile.
    if ((db.pragma('user_version', { simple: true }) as number) >= version) return;
    db.exec(sql);
    db.pragma(`user_version = ${version}`);
  });
  for (const f of files) {
    if ((db.pragma('user_version', { simple: true }) as number) >= f.version) continue;
    apply.immediate(readFileSync(dir + f.name, 'utf8'), f.version);
  }
}
