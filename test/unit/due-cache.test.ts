import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nothingDueFastPath, writeDueNote } from '../../src/cli/due-cache.js';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'mailpoll-due-'));
  const config = join(dir, 'mailpoll.yaml');
  const db = join(dir, 'mailpoll.db');
  writeFileSync(config, 'mailboxes: []\n');
  writeFileSync(db, '');
  return { dir, config, db };
}

describe('the nothing-due fast path', () => {
  it('ends a plain fetch before its due time, and only then', () => {
    const { config, db } = setup();
    const now = Date.now();
    writeDueNote(config, db, new Date(now + 60_000));
    expect(nothingDueFastPath(['fetch', '--config', config], {}, now)).toBe(0);
    expect(nothingDueFastPath(['fetch', '-c', config], {}, now + 59_000)).toBe(0);
    expect(nothingDueFastPath(['fetch', '--config', config], {}, now + 60_000)).toBeUndefined();
    expect(nothingDueFastPath(['fetch'], { MAILPOLL_CONFIG: config }, now)).toBe(0);
  });

  it('takes the normal path for any other flag, a changed config or a missing database', () => {
    const { config, db } = setup();
    const now = Date.now();
    writeDueNote(config, db, new Date(now + 60_000));
    for (const extra of [['--now'], ['--mailbox', 'x'], ['--verbose'], ['--log-level', 'debug']]) {
      expect(nothingDueFastPath(['fetch', '--config', config, ...extra], {}, now)).toBeUndefined();
    }
    expect(nothingDueFastPath(['status', '--config', config], {}, now)).toBeUndefined();
    utimesSync(config, new Date(), new Date(now + 5_000));
    expect(nothingDueFastPath(['fetch', '--config', config], {}, now)).toBeUndefined();
    writeDueNote(config, db, new Date(now + 60_000));
    rmSync(db);
    expect(nothingDueFastPath(['fetch', '--config', config], {}, now)).toBeUndefined();
  });

  it('takes the normal path once the database was written after the note (a daemon poll, a trigger)', () => {
    const { config, db } = setup();
    const now = Date.now();
    writeDueNote(config, db, new Date(now + 60_000));
    expect(nothingDueFastPath(['fetch', '--config', config], {}, now)).toBe(0);
    utimesSync(db, new Date(), new Date(Date.now() + 2_000));
    expect(nothingDueFastPath(['fetch', '--config', config], {}, now)).toBeUndefined();
  });

  it('writes no note when something is due now', () => {
    const { config, db } = setup();
    writeDueNote(config, db, undefined);
    expect(nothingDueFastPath(['fetch', '--config', config], {}, Date.now())).toBeUndefined();
  });
});
