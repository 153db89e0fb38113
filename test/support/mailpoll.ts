import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

/** The repository root, found from here whether this runs from test/ or compiled into build/dev. */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'bin', 'mailpoll.js'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the mailpoll repository root');
    dir = up;
  }
  return dir;
})();

/** Runs the built CLI as a real process, the way cron does. */
export const BIN = join(REPO_ROOT, 'bin', 'mailpoll.js');

export function tempDir(prefix = 'mailpoll-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function spawnMailpoll(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, MAILPOLL_CONFIG: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function runMailpoll(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnMailpoll(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mailpoll ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Writes a YAML config; values are JSON, which is valid YAML. */
export function writeConfig(dir: string, config: Record<string, unknown>, name = 'mailpoll.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export function openDb(file: string): Database.Database {
  return new Database(file, { readonly: true, fileMustExist: true });
}

/** Reads the database without holding it open (tests read while a fetch process writes). */
export function query<T>(file: string, sql: string, ...params: unknown[]): T[] {
  const db = openDb(file);
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}
