import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Db } from './database.js';

/**
 * A lease per mailbox in SQLite: two runs (cron plus a person, a slow run outlasting a minute, a
 * daemon beside cron) never poll the same mailbox at once. Portable: no flock, no signals, so it
 * works the same on Windows. A lease expires, so a crashed holder cannot keep a mailbox forever;
 * a live holder renews it while it works.
 */
export const LEASE_TTL_MS = 120_000;

/** Identifies this process in the lease table (and in `status` when a mailbox is held). */
export function leaseOwnerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export type LeaseResult = { acquired: true } | { acquired: false; owner: string; expiresAt: string };

/**
 * Takes the mailbox's lease if it is free, expired, or held by a process of this host that no
 * longer exists (killed with -9, or a crashed run): then the next cron tick need not wait out the
 * expiry. A holder on another host is only ever outlived by the expiry.
 */
export function acquireLease(
  db: Db,
  mailbox: string,
  owner: string,
  now = new Date(),
  ttlMs = LEASE_TTL_MS,
  isGone: (holder: string) => boolean = holderIsGone,
): LeaseResult {
  return db.transaction((): LeaseResult => {
    db.prepare('INSERT OR IGNORE INTO mailbox_state (mailbox) VALUES (?)').run(mailbox);
    const taken = db
      .prepare(
        `UPDATE mailbox_state SET lease_owner = ?, lease_expires_at = ?
         WHERE mailbox = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)`,
      )
      .run(owner, new Date(now.getTime() + ttlMs).toISOString(), mailbox, owner, now.toISOString());
    if (taken.changes === 1) return { acquired: true };
    const row = db.prepare('SELECT lease_owner, lease_expires_at FROM mailbox_state WHERE mailbox = ?').get(mailbox) as
      | { lease_owner: string; lease_expires_at: string }
      | undefined;
    if (row && isGone(row.lease_owner)) {
      db.prepare('UPDATE mailbox_state SET lease_owner = ?, lease_expires_at = ? WHERE mailbox = ? AND lease_owner = ?')
        .run(owner, new Date(now.getTime() + ttlMs).toISOString(), mailbox, row.lease_owner);
      return { acquired: true };
    }
    return { acquired: false, owner: row?.lease_owner ?? 'unknown', expiresAt: row?.lease_expires_at ?? '' };
  }).immediate();
}

/** Extends a lease this owner holds; false if it was lost (expired and taken by another run). */
export function renewLease(db: Db, mailbox: string, owner: string, now = new Date(), ttlMs = LEASE_TTL_MS): boolean {
  const r = db
    .prepare('UPDATE mailbox_state SET lease_expires_at = ? WHERE mailbox = ? AND lease_owner = ?')
    .run(new Date(now.getTime() + ttlMs).toISOString(), mailbox, owner);
  return r.changes === 1;
}

export function releaseLease(db: Db, mailbox: string, owner: string): void {
  db.prepare('UPDATE mailbox_state SET lease_owner = NULL, lease_expires_at = NULL WHERE mailbox = ? AND lease_owner = ?').run(mailbox, owner);
}

/** True when `holder` names a process on this host that is not running any more. */
export function holderIsGone(holder: string): boolean {
  const [host, pidText] = holder.split(':');
  const pid = Number(pidText);
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0); // signal 0 only asks whether the process exists (also on Windows)
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
