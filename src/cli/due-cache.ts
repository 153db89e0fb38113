import { createHash } from 'node:crypto';
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Cron starts `mailpoll fetch` every minute and most ticks find nothing due. Deciding that needs
 * the config (yaml, zod) and the database (better-sqlite3): three times the cost of starting node.
 * So each fetch leaves a note of when the next mailbox falls due; the next tick reads the note
 * with nothing but node:fs and exits at once if that time has not come, the config file is
 * unchanged and the database still exists. Anything unusual (other flags, a changed or missing
 * file, an unreadable note) takes the normal path, which decides from the database as always.
 * The note only ever delays a tick to a time the database itself gave; it never skips a due poll.
 *
 * This module imports only node built-ins: it runs before anything else is loaded.
 */
interface DueNote {
  v: 1;
  config: string;
  configMtimeMs: number;
  configSize: number;
  database: string;
  /** The earliest moment any mailbox is due (slack included), ISO 8601. */
  dueAt: string;
  /** When the note was written: a database written since (a daemon, a trigger) voids it. */
  writtenAtMs: number;
}

export function dueNotePath(configFile: string): string {
  return join(tmpdir(), `mailpoll-due-${createHash('sha256').update(configFile).digest('hex').slice(0, 20)}.json`);
}

/**
 * For `mailpoll fetch` with at most --config/-c and --json: the exit code when nothing can be due,
 * else undefined (go the normal way).
 */
export function nothingDueFastPath(argv: readonly string[], env: NodeJS.ProcessEnv, now = Date.now()): number | undefined {
  if (argv[0] !== 'fetch') return undefined;
  let config: string | undefined;
  let json = false;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] as string;
    if ((arg === '--config' || arg === '-c') && i + 1 < argv.length) config = argv[++i];
    else if (arg.startsWith('--config=')) config = arg.slice('--config='.length);
    else if (arg === '--json') json = true;
    else return undefined;
  }
  const file = resolve(config ?? env.MAILPOLL_CONFIG ?? 'mailpoll.yaml');
  try {
    const note = JSON.parse(readFileSync(dueNotePath(file), 'utf8')) as DueNote;
    const stat = statSync(file);
    if (note.v !== 1 || note.config !== file || note.configMtimeMs !== stat.mtimeMs || note.configSize !== stat.size) return undefined;
    if (!(now < Date.parse(note.dueAt))) return undefined;
    // A database deleted or moved means everything may be due; one written since the note (by a
    // daemon poll, an HTTP trigger, another run) may have moved a due time earlier.
    if (lastWrite(note.database) > note.writtenAtMs) return undefined;
  } catch {
    return undefined;
  }
  if (json) process.stdout.write(`${JSON.stringify({ ok: true, mailboxes: [] })}\n`);
  else if (process.stdout.isTTY) process.stdout.write('no mailbox is due (see mailpoll status); mailpoll fetch --now polls them anyway\n');
  return 0;
}

/** Records when the next mailbox falls due; `dueAt` undefined (something is due now) removes nothing but writes nothing. */
export function writeDueNote(configFile: string, database: string, dueAt: Date | undefined): void {
  if (dueAt === undefined) return;
  try {
    const stat = statSync(configFile);
    const note: DueNote = {
      v: 1, config: configFile, configMtimeMs: stat.mtimeMs, configSize: stat.size, database, dueAt: dueAt.toISOString(),
      writtenAtMs: Math.max(Date.now(), lastWrite(database)),
    };
    const path = dueNotePath(configFile);
    const tmp = `${path}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify(note), { mode: 0o600 });
    renameSync(tmp, path);
  } catch {
    // Only an optimisation: the next tick takes the normal path.
  }
}

/** The latest modification of the database or its write-ahead log; throws when the database is gone. */
function lastWrite(database: string): number {
  const main = statSync(database).mtimeMs;
  try {
    return Math.max(main, statSync(`${database}-wal`).mtimeMs);
  } catch {
    return main;
  }
}
