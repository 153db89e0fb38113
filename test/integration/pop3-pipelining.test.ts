/**
 * The POP3 client's pipelined RETR and DELE (RFC 2449 section 6.6) against a real Dovecot, which
 * announces PIPELINING: every message arrives byte for byte as an independent reader gets it, in
 * server order; a refusal inside the window fails only its message; a cut connection fails the
 * session; pipelined DELEs take effect at QUIT and not before.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailboxConfig } from '../../src/config/types.js';
import { ConnectionError, ProtocolError } from '../../src/errors.js';
import type { Candidate, Fetched, MailSession } from '../../src/sources/mail-source.js';
import { Pop3Client } from '../../src/sources/pop3/client.js';
import { pop3Source } from '../../src/sources/pop3/source.js';
import { mailboxConfig } from '../fixtures/mailbox-config.js';
import { plainMessage, uniqueId } from '../fixtures/messages.js';
import { startCuttingProxy } from '../support/cutting-proxy.js';
import { startDovecot, type DovecotServer } from '../support/dovecot.js';
import { newUser } from '../support/scenario.js';
import { pop3ServedBytes } from '../support/served-bytes.js';

let server: DovecotServer;
beforeAll(async () => {
  server = await startDovecot();
});
afterAll(async () => {
  await server?.stop();
});

type User = { user: string; password: string };

function pop3s(user: User, over: Partial<MailboxConfig> = {}): MailboxConfig {
  return mailboxConfig({
    name: `pipelining-${user.user}`,
    protocol: 'pop3',
    host: server.host,
    port: server.ports.pop3s,
    tls: { mode: 'implicit', caFile: server.caFile, insecureSkipVerify: false, allowPlaintext: false },
    username: user.user,
    password: { kind: 'literal', value: user.password },
    after: 'keep',
    maxMessageBytes: 20_000_000,
    timeouts: { connectMs: 10_000, commandMs: 20_000 },
    ...over,
  });
}

/**
 * Message i: dot-led lines (stuffed on the wire), 8-bit bytes, and a size that varies from a few
 * hundred bytes to about 1.2 MB, with one of 6 MB (beyond the RETR window) in the middle.
 */
function messageFor(i: number): Buffer {
  const lines = i === 40 ? 60_000 : (i * 7919) % 50 === 0 ? 12_000 : (i * 31) % 200;
  const body = [`.first line of ${i}`, '..two dots', 'caf\u00e9 \u00ff', '.'];
  for (let k = 0; k < lines; k += 1) body.push(k % 13 === 0 ? `.${k} ${'d'.repeat(90)}` : `${k} ${'x'.repeat(90)}`);
  return plainMessage({ messageId: uniqueId(`p${i}`), subject: `pipelined ${i}` }, `${body.join('\r\n')}\r\n`);
}

async function fill(user: User, count: number): Promise<void> {
  for (let i = 0; i < count; i += 1) await server.deliver(user.user, messageFor(i));
}

async function drain(session: MailSession, candidates: readonly Candidate[]): Promise<Fetched[]> {
  const out: Fetched[] = [];
  for await (const f of session.stream(candidates, 20_000_000)) out.push(f);
  return out;
}

function served(user: User): Promise<Map<string, Buffer>> {
  return pop3ServedBytes({ host: server.host, port: server.ports.pop3s, ca: readFileSync(server.caFile), username: user.user, password: user.password });
}

describe('POP3 PIPELINING against Dovecot', () => {
  it('Dovecot announces PIPELINING, so the pipelined path is the one under test', async () => {
    const user = await newUser(server, 'pl');
    const client = await Pop3Client.connect({ mailbox: pop3s(user) });
    expect(client.pipelining).toBe(true);
    client.destroy();
  });

  it('fetches every message byte for byte as served, in server order', async () => {
    const user = await newUser(server, 'pl');
    await fill(user, 120);
    const reference = await served(user);
    const session = await pop3Source(pop3s(user), user.password).open();
    const listing = await session.list(null);
    expect(listing.candidates.map((c) => c.serverId)).toEqual([...reference.keys()]);
    const fetched = await drain(session, listing.candidates);
    await session.close();
    expect(fetched.map((f) => f.candidate.serverId)).toEqual([...reference.keys()]);
    for (const f of fetched) {
      expect(f.error, f.candidate.serverId).toBeUndefined();
      expect(f.raw?.equals(reference.get(f.candidate.serverId) as Buffer), f.candidate.serverId).toBe(true);
      expect(f.raw?.length, 'LIST size matches what RETR brought').toBe(f.candidate.size);
    }
  });

  it('fails only the message the server refuses inside the window, and the rest still arrive', async () => {
    const user = await newUser(server, 'pl');
    await fill(user, 30);
    const reference = await served(user);
    const session = await pop3Source(pop3s(user, { after: 'delete' }), user.password).open();
    const listing = await session.list(null);
    // A message marked deleted in this session is refused by RETR (RFC 1939 section 5).
    const refused = listing.candidates[4] as Candidate;
    await session.acknowledge([refused.serverId]);
    const fetched = await drain(session, listing.candidates);
    // No QUIT: the server forgets the DELE and the maildrop stays whole.
    session.abort();
    expect(fetched.map((f) => f.candidate.serverId)).toEqual(listing.candidates.map((c) => c.serverId));
    for (const f of fetched) {
      if (f.candidate === refused) {
        expect(f.error).toBeInstanceOf(ProtocolError);
      } else {
        expect(f.raw?.equals(reference.get(f.candidate.serverId) as Buffer), f.candidate.serverId).toBe(true);
      }
    }
    expect(await server.listMaildir(user.user)).toHaveLength(30);
  });

  it('throws when the connection is cut with RETRs in flight; what came before is exact', async () => {
    const user = await newUser(server, 'pl');
    await fill(user, 30);
    const reference = await served(user);
    const proxy = await startCuttingProxy(server.host, server.ports.pop3s);
    try {
      for (const cut of [20_000, 90_000, 400_000]) {
        proxy.cutAfterServerBytes = cut;
        const session = await pop3Source(pop3s(user, { host: '127.0.0.1', port: proxy.port }), user.password).open();
        const got: Fetched[] = [];
        let thrown: unknown;
        try {
          for await (const f of session.stream((await session.list(null)).candidates, 20_000_000)) got.push(f);
        } catch (err) {
          thrown = err;
        }
        session.abort();
        expect(thrown, `cut after ${cut} bytes`).toBeInstanceOf(ConnectionError);
        expect(got.length).toBeLessThan(30);
        for (const f of got) expect(f.raw?.equals(reference.get(f.candidate.serverId) as Buffer)).toBe(true);
      }
    } finally {
      await proxy.close();
    }
  });

  it('pipelines the DELEs of an acknowledgement; the server removes the messages at QUIT', async () => {
    const user = await newUser(server, 'pl');
    await fill(user, 250);
    const session = await pop3Source(pop3s(user, { after: 'delete' }), user.password).open();
    const listing = await session.list(null);
    const gone = listing.candidates.slice(0, 240).map((c) => c.serverId);
    await session.acknowledge(gone);
    expect(await server.listMaildir(user.user)).toHaveLength(250);
    await session.close();
    const left = await served(user);
    expect([...left.keys()]).toEqual(listing.candidates.slice(240).map((c) => c.serverId));
  });
});
