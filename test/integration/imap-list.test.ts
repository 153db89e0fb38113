import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imapSource } from '../../src/sources/imap.js';
import type { Cursor } from '../../src/sources/mail-source.js';
import { mailboxConfig } from '../fixtures/mailbox-config.js';
import { plainMessage, uniqueId } from '../fixtures/messages.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { newUser } from '../support/scenario.js';

/**
 * The listing tells the caller about new mail as soon as SELECT shows it, so the analysis worker
 * starts while the server still lists sizes; and only then: a poll that finds nothing must not pay
 * for a worker.
 */

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
});

describe('IMAP listing: mail ahead', () => {
  it('says so before the listing is done when there are UIDs above the cursor, and not when there are none', async () => {
    const user = await newUser(server, 'ahead');
    for (const i of [1, 2, 3]) await server.deliver(user.user, plainMessage({ subject: `ahead ${i}`, messageId: uniqueId(`ahead${i}`) }));
    const mailbox = mailboxConfig({
      name: 'ahead', host: server.host, port: server.ports.imaps, username: user.user, after: 'keep',
      tls: { mode: 'implicit', caFile: server.caFile, insecureSkipVerify: false, allowPlaintext: false },
      timeouts: { connectMs: 10_000, commandMs: 20_000 },
    });
    // A session lists once: each poll opens its own.
    const list = async (cursor: Cursor | null, mailAhead: () => void) => {
      const session = await imapSource(mailbox, user.password).open();
      try {
        const listing = await session.list(cursor, undefined, mailAhead);
        await session.close();
        return listing;
      } finally {
        session.abort();
      }
    };
    const events: string[] = [];
    const listing = await list(null, () => events.push('mail ahead')).then((l) => {
      events.push('listed');
      return l;
    });
    expect(listing.candidates).toHaveLength(3);
    expect(events).toEqual(['mail ahead', 'listed']);

    // The cursor at the last UID: nothing new, no call.
    const last = listing.candidates[2]?.uid as number;
    let called = 0;
    const again = await list({ uidValidity: listing.uidValidity, lastUid: last }, () => (called += 1));
    expect(again.candidates).toEqual([]);
    expect(called).toBe(0);

    // One more message: a call again.
    await server.deliver(user.user, plainMessage({ subject: 'ahead 4', messageId: uniqueId('ahead4') }));
    const more = await list({ uidValidity: listing.uidValidity, lastUid: last }, () => (called += 1));
    expect(more.candidates).toHaveLength(1);
    expect(called).toBe(1);
  });
});
