import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * Two runs that start together on a database file that does not exist yet (two cron lines, or
 * cron and a person) both open it: both must succeed. Switching a new file to WAL needs it to
 * itself, and SQLite refused the second one at once with "database is locked". Real processes,
 * released at the same instant, twelve rounds: the race was lost about one round in five.
 */
const BUILT = new URL('../../dist/store/database.js', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'mailpoll-race-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function opener(file: string, at: number): Promise<string> {
  const script = `const { openDatabase } = await import(${JSON.stringify(BUILT)});
while (Date.now() < ${at}) {}
try { const db = openDatabase(${JSON.stringify(file)}); process.stdout.write('ok ' + db.pragma('journal_mode', { simple: true })); db.close(); }
catch (e) { process.stdout.write('FAIL ' + e.message); }`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', () => resolve(out));
  });
}

describe('openDatabase', () => {
  it('two processes creating the same database at the same instant both open it, in WAL mode', async () => {
    const results: string[] = [];
    for (let round = 0; round < 12; round++) {
      const file = join(dir, `race-${round}.db`);
      // Both are started, then released at the same instant once Node has loaded.
      const at = Date.now() + 300;
      results.push(...(await Promise.all([opener(file, at), opener(file, at)])));
    }
    expect(results.filter((r) => r !== 'ok wal')).toEqual([]);
  }, 60_000);
});
