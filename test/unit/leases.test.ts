import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { acquireLease, releaseLease, renewLease } from '../../src/store/leases.js';

describe('mailbox leases', () => {
  const t0 = new Date('2026-01-01T10:00:00Z');
  const plus = (ms: number) => new Date(t0.getTime() + ms);

  it('one holder at a time; released leases are free again', () => {
    const db = openDatabase(':memory:');
    expect(acquireLease(db, 'support', 'A', t0, 60_000)).toEqual({ acquired: true });
    expect(acquireLease(db, 'support', 'B', plus(1_000), 60_000)).toMatchObject({ acquired: false, owner: 'A' });
    expect(acquireLease(db, 'other', 'B', plus(1_000), 60_000)).toEqual({ acquired: true });
    releaseLease(db, 'support', 'A');
    expect(acquireLease(db, 'support', 'B', plus(2_000), 60_000)).toEqual({ acquired: true });
  });

  it('a crashed holder loses the lease when it expires; renewal keeps a live one', () => {
    const db = openDatabase(':memory:');
    acquireLease(db, 'support', 'A', t0, 60_000);
    expect(renewLease(db, 'support', 'A', plus(50_000), 60_000)).toBe(true);
    expect(acquireLease(db, 'support', 'B', plus(100_000), 60_000).acquired).toBe(false);
    expect(acquireLease(db, 'support', 'B', plus(111_000), 60_000).acquired).toBe(true);
    expect(renewLease(db, 'support', 'A', plus(112_000), 60_000)).toBe(false);
    releaseLease(db, 'support', 'A'); // a late release by the old holder must not free B's lease
    expect(acquireLease(db, 'support', 'C', plus(113_000), 60_000).acquired).toBe(false);
  });
});

describe('leases of dead holders', () => {
  it('a lease held by a process of this host that no longer exists is taken at once', async () => {
    const { spawnSync } = await import('node:child_process');
    const { hostname } = await import('node:os');
    const { holderIsGone } = await import('../../src/store/leases.js');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    expect(holderIsGone(`${hostname()}:${dead}:abc`)).toBe(true);
    expect(holderIsGone(`${hostname()}:${process.pid}:abc`)).toBe(false);
    expect(holderIsGone(`some-other-host:${dead}:abc`)).toBe(false);

    const db = openDatabase(':memory:');
    const t = new Date('2026-01-01T10:00:00Z');
    expect(acquireLease(db, 'm', `${hostname()}:${dead}:abc`, t, 60_000)).toEqual({ acquired: true });
    expect(acquireLease(db, 'm', 'B', new Date(t.getTime() + 1000), 60_000)).toEqual({ acquired: true });
  });
});
