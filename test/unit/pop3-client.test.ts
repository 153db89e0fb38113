/**
 * The POP3 client and source against a scripted fake server on real loopback sockets. Protocol
 * claims about real servers are proved against Dovecot in test/integration; this file proves the
 * client's own behaviour: exact bytes under hostile chunking, timeouts, broken connections, STLS
 * that never falls back to plaintext, and passwords that never reach an error.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mailboxConfig } from '../fixtures/mailbox-config.js';
import type { MailboxConfig, TlsMode } from '../../src/config/types.js';
import { AuthError, ConnectionError, ProtocolError, TimeoutError, TlsError } from '../../src/errors.js';
import { ListingReader, Pop3Client, UIDL_LINE } from '../../src/sources/pop3/client.js';
import { Pop3Framer } from '../../src/sources/pop3/framing.js';
import { pop3Source } from '../../src/sources/pop3/source.js';
import { makeTestCertificates } from '../support/certs.js';

// ---- fixtures ----------------------------------------------------------------------------------

const PASSWORD = 's3cr3t-Pa55';

const MESSAGE_1 = Buffer.from(
  'From: a@example.test\r\nSubject: caf\xe9 \xff\x80\r\n\r\n.leading dot\r\n.\r\n..\r\nend\r\n',
  'latin1',
);
const MESSAGE_2 = Buffer.from('Subject: two\r\n\r\nbody\r\n', 'latin1');

interface Keys {
  key: Buffer;
  cert: Buffer;
}

function mailbox(port: number, over: { mode?: TlsMode; allowPlaintext?: boolean; caFile?: string; connectMs?: number; commandMs?: number; after?: 'keep' | 'delete' } = {}): MailboxConfig {
  return mailboxConfig({
    name: 'support',
    protocol: 'pop3',
    port,
    tls: { mode: over.mode ?? 'none', caFile: over.caFile, insecureSkipVerify: false, allowPlaintext: over.allowPlaintext ?? true },
    username: 'alice',
    password: { kind: 'literal', value: PASSWORD },
    after: over.after ?? 'delete',
    maxMessageBytes: 1024 * 1024,
    timeouts: { connectMs: over.connectMs ?? 3_000, commandMs: over.commandMs ?? 3_000 },
  });
}

/** RFC 1939 section 3 byte-stuffing and terminator, as a server sends a message. */
function stuffed(message: Buffer): Buffer {
  const text = message.toString('latin1');
  const lines = text.split(/(?<=\n)/).map((l) => (l.startsWith('.') ? `.${l}` : l));
  return Buffer.from(`${lines.join('')}.\r\n`, 'latin1');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---- the fake server ---------------------------------------------------------------------------

/** One client connection on the fake server. */
class FakeConnection {
  private buffer = '';
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private socket: Socket,
    private readonly handler: Handler,
    private readonly received: string[],
  ) {
    this.attach(socket);
  }

  /** Writes bytes at once, or in 1-7 byte pieces with a pause between them. */
  async send(data: string | Buffer, chunked = false): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    if (!chunked) return this.write(buf);
    for (let pos = 0, i = 0; pos < buf.length; i += 1) {
      const n = 1 + (i * 5 + 3) % 7;
      await this.write(buf.subarray(pos, pos + n));
      pos += n;
      await sleep(1);
    }
  }

  /** Server side of STLS: the rest of the conversation is TLS on this same socket. */
  startTls(keys: Keys): void {
    this.socket.off('data', this.onData);
    const secure = new TLSSocket(this.socket, { isServer: true, key: keys.key, cert: keys.cert });
    secure.on('error', () => undefined);
    this.socket = secure;
    this.attach(secure);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private write(buf: Buffer): Promise<void> {
    return new Promise((resolve) => {
      this.socket.write(buf, () => resolve());
    });
  }

  private attach(socket: Socket): void {
    socket.setNoDelay(true);
    socket.on('data', this.onData);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buffer += chunk.toString('latin1');
    for (let i = this.buffer.indexOf('\r\n'); i !== -1; i = this.buffer.indexOf('\r\n')) {
      const line = this.buffer.slice(0, i);
      this.buffer = this.buffer.slice(i + 2);
      this.received.push(line);
      this.queue = this.queue.then(() => this.handler(line, this)).catch(() => undefined);
    }
  };
}

type Handler = (line: string, conn: FakeConnection) => void | Promise<void>;

interface FakeServer {
  port: number;
  /** Every command line the server received, in order. */
  received: string[];
  connections: () => number;
  close: () => Promise<void>;
}

const servers: FakeServer[] = [];

async function fakeServer(handler: Handler, options: { greeting?: string | null; implicitTls?: Keys } = {}): Promise<FakeServer> {
  const received: string[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const onConnection = (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    const conn = new FakeConnection(socket, handler, received);
    const greeting = options.greeting === undefined ? '+OK fake POP3 ready\r\n' : options.greeting;
    if (greeting !== null) void conn.send(greeting);
  };
  const server: Server = options.implicitTls === undefined
    ? createNetServer(onConnection)
    : createTlsServer({ key: options.implicitTls.key, cert: options.implicitTls.cert }, onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const fake: FakeServer = {
    port: address.port,
    received,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(fake);
  return fake;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Maildrop {
  capa?: string[];
  messages?: { uid: string; bytes: Buffer }[];
  chunked?: boolean;
  /** Per verb: replaces the default answer. */
  on?: Partial<Record<string, (arg: string, conn: FakeConnection) => void | Promise<void>>>;
}

/** A well-behaved POP3 maildrop; `on` replaces the answer to chosen verbs. */
function maildrop(drop: Maildrop = {}): Handler {
  const messages = drop.messages ?? [{ uid: 'uid-1', bytes: MESSAGE_1 }, { uid: 'uid-2', bytes: MESSAGE_2 }];
  const chunked = drop.chunked ?? false;
  const deleted = new Set<number>();
  return async (line, conn) => {
    const [verb = '', ...rest] = line.split(' ');
    const arg = rest.join(' ');
    const custom = drop.on?.[verb.toUpperCase()];
    if (custom !== undefined) return custom(arg, conn);
    const live = messages.map((m, i) => ({ ...m, n: i + 1 })).filter((m) => !deleted.has(m.n));
    switch (verb.toUpperCase()) {
      case 'CAPA':
        return conn.send(`+OK\r\n${(drop.capa ?? ['USER', 'UIDL']).map((c) => `${c}\r\n`).join('')}.\r\n`, chunked);
      case 'USER':
        return conn.send('+OK\r\n', chunked);
      case 'PASS':
        return conn.send(arg === PASSWORD ? '+OK logged in\r\n' : '-ERR [AUTH] invalid\r\n', chunked);
      case 'AUTH': {
        const ok = arg === `PLAIN ${Buffer.from(`\0alice\0${PASSWORD}`).toString('base64')}`;
        return conn.send(ok ? '+OK logged in\r\n' : '-ERR [AUTH] invalid\r\n', chunked);
      }
      case 'STAT':
        return conn.send(`+OK ${live.length} ${live.reduce((s, m) => s + m.bytes.length, 0)}\r\n`, chunked);
      case 'UIDL':
        return conn.send(`+OK\r\n${live.map((m) => `${m.n} ${m.uid}\r\n`).join('')}.\r\n`, chunked);
      case 'LIST':
        return conn.send(`+OK\r\n${live.map((m) => `${m.n} ${m.bytes.length}\r\n`).join('')}.\r\n`, chunked);
      case 'RETR': {
        const m = live.find((x) => x.n === Number(arg));
        if (m === undefined) return conn.send('-ERR no such message\r\n', chunked);
        return conn.send(Buffer.concat([Buffer.from(`+OK ${m.bytes.length} octets\r\n`), stuffed(m.bytes)]), chunked);
      }
      case 'DELE':
        deleted.add(Number(arg));
        return conn.send(`+OK message ${arg} deleted\r\n`, chunked);
      case 'NOOP':
        return conn.send('+OK\r\n', chunked);
      case 'QUIT':
        await conn.send('+OK bye\r\n', chunked);
        return conn.destroy();
      default:
        return conn.send('-ERR unknown command\r\n', chunked);
    }
  };
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** An error and everything it chains to, as one string: a password must be in none of it. */
function everything(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && e !== null; e = e instanceof Error ? e.cause : undefined) {
    parts.push(String(e), e instanceof Error ? (e.stack ?? '') : '', JSON.stringify(e));
  }
  return parts.join('\n');
}

// ---- tests -------------------------------------------------------------------------------------

describe('Pop3Client', () => {
  it('runs a whole session with exact bytes while the server writes 1-7 bytes at a time', async () => {
    const server = await fakeServer(maildrop({ chunked: true }));
    const push = vi.spyOn(Pop3Framer.prototype, 'push');
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    await client.login('alice', PASSWORD);
    expect(await client.stat()).toEqual({ count: 2, size: MESSAGE_1.length + MESSAGE_2.length });
    expect(await client.uidl()).toEqual([{ number: 1, uid: 'uid-1' }, { number: 2, uid: 'uid-2' }]);
    expect(await client.list()).toEqual([{ number: 1, size: MESSAGE_1.length }, { number: 2, size: MESSAGE_2.length }]);
    const one = await client.retr(1, 1024 * 1024);
    const two = await client.retr(2, 1024 * 1024);
    expect(one.toString('hex')).toBe(MESSAGE_1.toString('hex'));
    expect(two.toString('hex')).toBe(MESSAGE_2.toString('hex'));
    await client.dele(1);
    await client.noop();
    await client.quit();
    expect(server.received).toEqual(['CAPA', 'USER alice', `PASS ${PASSWORD}`, 'STAT', 'UIDL', 'LIST', 'RETR 1', 'RETR 2', 'DELE 1', 'NOOP', 'QUIT']);
    expect(client.secure).toBe(false);
    // The bytes really arrived in pieces: far more reads than responses.
    expect(push.mock.calls.length).toBeGreaterThan(60);
    push.mockRestore();
  });

  it('uses AUTH PLAIN with an initial response when CAPA lists SASL PLAIN', async () => {
    const server = await fakeServer(maildrop({ capa: ['USER', 'SASL PLAIN LOGIN', 'UIDL'] }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    expect(client.capabilities.get('SASL')).toEqual(['PLAIN', 'LOGIN']);
    await client.login('alice', PASSWORD);
    await client.quit();
    const b64 = Buffer.from(`\0alice\0${PASSWORD}`, 'utf8').toString('base64');
    expect(server.received).toEqual(['CAPA', `AUTH PLAIN ${b64}`, 'QUIT']);
  });

  it('waits for the "+ " continuation when AUTH PLAIN with the response would exceed 255 octets', async () => {
    const longPassword = 'p'.repeat(300);
    const b64 = Buffer.from(`\0alice\0${longPassword}`, 'utf8').toString('base64');
    let stage = 0;
    const server = await fakeServer(async (line, conn) => {
      if (line === 'CAPA') return conn.send('+OK\r\nSASL PLAIN\r\n.\r\n');
      if (line === 'AUTH PLAIN' && stage === 0) {
        stage = 1;
        return conn.send('+ \r\n');
      }
      if (stage === 1 && line === b64) return conn.send('+OK welcome\r\n');
      return conn.send('-ERR out of script\r\n');
    });
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    await client.login('alice', longPassword);
    expect(server.received).toEqual(['CAPA', 'AUTH PLAIN', b64]);
    client.destroy();
  });

  it('turns -ERR on PASS into an AuthError with the server text and without the password', async () => {
    // The server even echoes the password, as a careless one might: it must still not surface.
    const server = await fakeServer(maildrop({
      on: { PASS: (arg, conn) => conn.send(`-ERR [AUTH] Authentication failed for password ${arg}\r\n`) },
    }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    const err = await caught(client.login('alice', PASSWORD));
    expect(err).toBeInstanceOf(AuthError);
    const auth = err as AuthError;
    expect(auth.code).toBe('AUTH');
    expect(auth.mailbox).toBe('support');
    expect(auth.message).toContain('[AUTH] Authentication failed');
    expect(auth.serverResponse).toContain('[AUTH] Authentication failed');
    expect(everything(err)).not.toContain(PASSWORD);
    client.destroy();
  });

  it('keeps the password and its base64 out of an AUTH PLAIN refusal', async () => {
    const server = await fakeServer(maildrop({
      capa: ['SASL PLAIN'],
      on: { AUTH: (arg, conn) => conn.send(`-ERR [AUTH] bad: ${arg}\r\n`) },
    }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    const err = await caught(client.login('alice', PASSWORD));
    expect(err).toBeInstanceOf(AuthError);
    expect(everything(err)).not.toContain(PASSWORD);
    expect(everything(err)).not.toContain(Buffer.from(`\0alice\0${PASSWORD}`).toString('base64'));
    client.destroy();
  });

  it('reports a locked maildrop ([IN-USE], RFC 2449) as a ConnectionError, not as bad credentials', async () => {
    const server = await fakeServer(maildrop({ on: { PASS: (_a, conn) => conn.send('-ERR [IN-USE] mailbox locked\r\n') } }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    const err = await caught(client.login('alice', PASSWORD));
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).not.toBeInstanceOf(AuthError);
    client.destroy();
  });

  it('rejects a command the server never answers with a TimeoutError within commandMs', async () => {
    const server = await fakeServer(maildrop({ on: { UIDL: () => undefined } }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port, { commandMs: 300 }) });
    await client.login('alice', PASSWORD);
    const started = Date.now();
    const err = await caught(client.uidl());
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).message).toContain('UIDL');
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(1_500);
    // The session is over: a later command fails at once instead of hanging.
    await expect(client.noop()).rejects.toBeInstanceOf(TimeoutError);
  });

  it('times out a server that accepts the connection but never greets, within connectMs', async () => {
    const server = await fakeServer(maildrop(), { greeting: null });
    const started = Date.now();
    const err = await caught(Pop3Client.connect({ mailbox: mailbox(server.port, { connectMs: 300 }) }));
    expect(err).toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('rejects a RETR cut off by the server with a ConnectionError', async () => {
    const server = await fakeServer(maildrop({
      on: {
        RETR: async (_arg, conn) => {
          await conn.send('+OK 500 octets\r\nFrom: a@example.test\r\nSubj', true);
          conn.destroy();
        },
      },
    }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    await client.login('alice', PASSWORD);
    const err = await caught(client.retr(1, 1024 * 1024));
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as ConnectionError).mailbox).toBe('support');
  });

  it('rejects a RETR over maxBytes and stays usable for the next command', async () => {
    const server = await fakeServer(maildrop());
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    await client.login('alice', PASSWORD);
    const err = await caught(client.retr(1, 20));
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toContain('larger than 20 bytes');
    expect((await client.retr(2, 1024)).equals(MESSAGE_2)).toBe(true);
    await client.quit();
  });

  it('rejects -ERR on RETR with a ProtocolError carrying the server text', async () => {
    const server = await fakeServer(maildrop());
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    await client.login('alice', PASSWORD);
    const err = await caught(client.retr(9, 1024));
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).serverResponse).toBe('no such message');
    await client.quit();
  });

  it('leave() sends QUIT without waiting for its answer; the session is over', async () => {
    // A server slow to answer QUIT, as one with a large maildrop is: leave() does not wait for it.
    const server = await fakeServer(maildrop({ on: { QUIT: (_a, conn) => void setTimeout(() => conn.send('+OK bye\r\n'), 5_000) } }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    await client.login('alice', PASSWORD);
    const started = performance.now();
    client.leave();
    expect(performance.now() - started).toBeLessThan(1_000);
    await expect(client.stat()).rejects.toBeInstanceOf(ConnectionError);
    await vi.waitFor(() => expect(server.received.at(-1)).toBe('QUIT'));
  });

  it('rejects QUIT answered with -ERR, since the deletions did not happen', async () => {
    const server = await fakeServer(maildrop({ on: { QUIT: (_a, conn) => conn.send('-ERR some deleted messages not removed\r\n') } }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    await client.login('alice', PASSWORD);
    await client.dele(1);
    await expect(client.quit()).rejects.toBeInstanceOf(ProtocolError);
  });

  it('refuses STARTTLS mode against a server without STLS, before any login', async () => {
    const server = await fakeServer(maildrop({ capa: ['USER', 'SASL PLAIN', 'UIDL'] }));
    const err = await caught(Pop3Client.connect({ mailbox: mailbox(server.port, { mode: 'starttls' }) }));
    expect(err).toBeInstanceOf(TlsError);
    expect((err as TlsError).message).toContain('does not offer STLS');
    await sleep(50);
    expect(server.received).toEqual(['CAPA']);
    expect(server.received.some((l) => /^(USER|PASS|AUTH|STLS)\b/i.test(l))).toBe(false);
  });

  it('refuses STARTTLS mode when the server answers STLS with -ERR', async () => {
    const server = await fakeServer(maildrop({ capa: ['STLS', 'USER'], on: { STLS: (_a, conn) => conn.send('-ERR TLS not available\r\n') } }));
    const err = await caught(Pop3Client.connect({ mailbox: mailbox(server.port, { mode: 'starttls' }) }));
    expect(err).toBeInstanceOf(TlsError);
    expect(server.received).toEqual(['CAPA', 'STLS']);
  });

  it('refuses tls: none unless allowPlaintext, without connecting at all', async () => {
    const server = await fakeServer(maildrop());
    const err = await caught(Pop3Client.connect({ mailbox: mailbox(server.port, { mode: 'none', allowPlaintext: false }) }));
    expect(err).toBeInstanceOf(TlsError);
    await sleep(50);
    expect(server.connections()).toBe(0);
  });

  it('reports a refused connection as a ConnectionError', async () => {
    const server = await fakeServer(maildrop());
    const port = server.port;
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    await expect(Pop3Client.connect({ mailbox: mailbox(port) })).rejects.toBeInstanceOf(ConnectionError);
  });

  it('fails the session when the server sends a line that is not a POP3 status', async () => {
    const server = await fakeServer(maildrop({ on: { NOOP: (_a, conn) => conn.send('HTTP/1.1 400 Bad Request\r\n') } }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    await expect(client.noop()).rejects.toBeInstanceOf(ProtocolError);
  });
});

describe('Pop3Client over TLS', () => {
  let dir: string;
  let keys: Keys;
  let caFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailpoll-pop3-'));
    const certs = await makeTestCertificates(dir);
    keys = { key: await readFile(certs.keyFile), cert: await readFile(certs.certFile) };
    caFile = certs.caFile;
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Before TLS the server offers only STLS; after it, SASL PLAIN (as Dovecot does on 110). */
  function stlsDrop(extra: Maildrop['on'] = {}): Handler {
    let secure = false;
    return maildrop({
      on: {
        CAPA: (_a, conn) => conn.send(secure ? '+OK\r\nSASL PLAIN\r\nUIDL\r\n.\r\n' : '+OK\r\nSTLS\r\n.\r\n'),
        STLS: async (_a, conn) => {
          await conn.send('+OK Begin TLS negotiation now\r\n');
          conn.startTls(keys);
          secure = true;
        },
        ...extra,
      },
    });
  }

  it('upgrades with STLS, verifies the certificate, asks CAPA again and logs in over TLS', async () => {
    const server = await fakeServer(stlsDrop());
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port, { mode: 'starttls', caFile }) });
    expect(client.secure).toBe(true);
    expect(client.capabilities.has('STLS')).toBe(false);
    expect(client.capabilities.get('SASL')).toEqual(['PLAIN']);
    await client.login('alice', PASSWORD);
    expect((await client.retr(1, 1024)).equals(MESSAGE_1)).toBe(true);
    await client.quit();
    expect(server.received.slice(0, 3)).toEqual(['CAPA', 'STLS', 'CAPA']);
    expect(server.received[3]).toMatch(/^AUTH PLAIN /);
  });

  it('refuses STLS to a certificate it cannot verify, with a TlsError and no login', async () => {
    const server = await fakeServer(stlsDrop());
    const err = await caught(Pop3Client.connect({ mailbox: mailbox(server.port, { mode: 'starttls' }) }));
    expect(err).toBeInstanceOf(TlsError);
    await sleep(50);
    expect(server.received).toEqual(['CAPA', 'STLS']);
  });

  it('refuses plaintext injected right after +OK to STLS', async () => {
    const server = await fakeServer(stlsDrop({
      STLS: (_a, conn) => conn.send('+OK Begin TLS\r\n+OK\r\nSASL PLAIN\r\n.\r\n'),
    }));
    const err = await caught(Pop3Client.connect({ mailbox: mailbox(server.port, { mode: 'starttls', caFile }) }));
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).message).toContain('no command asked for');
    expect(server.received).toEqual(['CAPA', 'STLS']);
  });

  it('speaks implicit TLS (POP3S) from the first byte', async () => {
    const server = await fakeServer(maildrop({ capa: ['SASL PLAIN', 'UIDL'], chunked: true }), { implicitTls: keys });
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port, { mode: 'implicit', caFile }) });
    expect(client.secure).toBe(true);
    await client.login('alice', PASSWORD);
    expect((await client.retr(1, 1024)).equals(MESSAGE_1)).toBe(true);
    await client.quit();
  });
});

describe('pop3Source', () => {
  it('lists UIDL joined with LIST, fetches by UIDL, and DELEs only what was acknowledged, committed at QUIT', async () => {
    const server = await fakeServer(maildrop());
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    const listing = await session.list({ uidValidity: 'ignored', lastUid: 99 });
    expect(listing).toEqual({
      uidValidity: '',
      candidates: [{ serverId: 'uid-1', size: MESSAGE_1.length }, { serverId: 'uid-2', size: MESSAGE_2.length }],
    });
    const second = listing.candidates[1];
    if (second === undefined) throw new Error('no candidate');
    const fetched = [];
    for await (const f of session.stream([second], 1024)) fetched.push(f);
    expect(fetched).toHaveLength(1);
    expect(fetched[0]?.raw?.equals(MESSAGE_2)).toBe(true);
    await session.acknowledge(['uid-2']);
    await session.acknowledge(['uid-2']); // repeated: no second DELE
    await session.close();
    expect(server.received).toEqual(['CAPA', 'USER alice', `PASS ${PASSWORD}`, 'UIDL', 'LIST', 'RETR 2', 'DELE 2', 'QUIT']);
  });

  it('sends no DELE when after is keep', async () => {
    const server = await fakeServer(maildrop());
    const session = await pop3Source(mailbox(server.port, { after: 'keep' }), PASSWORD).open();
    await session.list(null);
    await session.acknowledge(['uid-1', 'uid-2']);
    await session.close();
    expect(server.received.some((l) => l.startsWith('DELE'))).toBe(false);
  });

  it('rejects fetch and acknowledge of an unknown UIDL without sending anything', async () => {
    const server = await fakeServer(maildrop());
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    await session.list(null);
    const unknown = [];
    for await (const f of session.stream([{ serverId: 'nope', size: 1 }], 1024)) unknown.push(f);
    expect(unknown[0]?.error).toBeInstanceOf(ProtocolError);
    await expect(session.acknowledge(['uid-1', 'nope'])).rejects.toBeInstanceOf(ProtocolError);
    session.abort();
    expect(server.received.some((l) => /^(RETR|DELE)/.test(l))).toBe(false);
  });

  it('aborts without QUIT, so the server forgets the DELEs', async () => {
    const server = await fakeServer(maildrop());
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    await session.list(null);
    await session.acknowledge(['uid-1']);
    session.abort();
    await sleep(50);
    expect(server.received.slice(-2)).toEqual(['LIST', 'DELE 1']);
    await expect(session.list(null)).rejects.toBeInstanceOf(ConnectionError);
  });

  it('leaves out and warns about a message whose UIDL repeats an earlier one', async () => {
    const server = await fakeServer(maildrop({
      messages: [{ uid: 'same', bytes: MESSAGE_1 }, { uid: 'same', bytes: MESSAGE_2 }, { uid: 'other', bytes: MESSAGE_2 }],
    }));
    const warnings: string[] = [];
    const session = await pop3Source(mailbox(server.port), PASSWORD, { warn: (_o, msg) => warnings.push(msg ?? '') }).open();
    const listing = await session.list(null);
    expect(listing.candidates.map((c) => c.serverId)).toEqual(['same', 'other']);
    expect(warnings.filter((w) => w.includes('UIDL'))).toEqual(['two messages share one UIDL; the later one is left on the server']);
    await session.acknowledge(['same', 'other']);
    await session.close();
    expect(server.received.filter((l) => l.startsWith('DELE'))).toEqual(['DELE 1', 'DELE 3']);
  });

  it('refuses tls: none without allowPlaintext (defence in depth)', async () => {
    const server = await fakeServer(maildrop());
    await expect(pop3Source(mailbox(server.port, { allowPlaintext: false }), PASSWORD).open()).rejects.toBeInstanceOf(TlsError);
    expect(server.connections()).toBe(0);
  });

  it('does not leak the password when the login is refused', async () => {
    const server = await fakeServer(maildrop({ on: { PASS: (_a, conn) => conn.send('-ERR [AUTH] nope\r\n') } }));
    const err = await caught(pop3Source(mailbox(server.port), PASSWORD).open());
    expect(err).toBeInstanceOf(AuthError);
    expect(everything(err)).not.toContain(PASSWORD);
  });
});

// ---- PIPELINING (RFC 2449 section 6.6) ---------------------------------------------------------

/** `count` distinct messages, some dot-stuffed and 8-bit, of about `bytes` bytes each. */
function manyMessages(count: number, bytes = 0): { uid: string; bytes: Buffer }[] {
  return Array.from({ length: count }, (_, i) => {
    const filler = bytes > 0 ? `${'z'.repeat(998)}\r\n`.repeat(Math.ceil(bytes / 1000)) : '';
    const raw = `Subject: m${i}\r\n\r\n.dot ${i}\r\n\xe9\xff\r\n${filler}..\r\nend ${i}\r\n`;
    return { uid: `uid-${i + 1}`, bytes: Buffer.from(raw, 'latin1') };
  });
}

/** Counts, for each RETR or DELE the server handles, how many of them it had received by then. */
function arrivals(server: { received: string[] }, verb: string): () => number {
  return () => server.received.filter((l) => l.startsWith(verb)).length;
}

async function collect(session: { stream: (c: readonly { serverId: string; size: number }[], max: number) => AsyncIterable<{ candidate: { serverId: string }; raw?: Buffer; error?: Error }> }, candidates: readonly { serverId: string; size: number }[]) {
  const out: { id: string; raw?: Buffer; error?: Error }[] = [];
  for await (const f of session.stream(candidates, 16 * 1024 * 1024)) out.push({ id: f.candidate.serverId, raw: f.raw, error: f.error });
  return out;
}

describe('pop3Source with PIPELINING', () => {
  it('sends the RETRs of a segment at once and yields every message exactly, in order, under hostile chunking', async () => {
    const messages = manyMessages(6);
    let seenAtFirst = 0;
    let first = true;
    const drop = maildrop({
      capa: ['USER', 'UIDL', 'PIPELINING'],
      messages,
      chunked: true,
      on: {
        RETR: async (arg, conn) => {
          if (first) {
            first = false;
            await sleep(40); // the client's next commands arrive meanwhile
            seenAtFirst = countRetr();
          }
          const m = messages[Number(arg) - 1] as { bytes: Buffer };
          await conn.send(Buffer.concat([Buffer.from(`+OK ${m.bytes.length} octets\r\n`), stuffed(m.bytes)]), true);
        },
      },
    });
    const server = await fakeServer(drop);
    const countRetr = arrivals(server, 'RETR');
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    const listing = await session.list(null);
    const out = await collect(session, listing.candidates);
    expect(seenAtFirst).toBe(6);
    expect(out.map((o) => o.id)).toEqual(messages.map((m) => m.uid));
    out.forEach((o, i) => expect(o.raw?.equals((messages[i] as { bytes: Buffer }).bytes), o.id).toBe(true));
    await session.close();
    expect(server.received.slice(-7)).toEqual(['RETR 1', 'RETR 2', 'RETR 3', 'RETR 4', 'RETR 5', 'RETR 6', 'QUIT']);
  });

  it('sends one RETR at a time, each when its message is asked for, when the server does not announce PIPELINING', async () => {
    const messages = manyMessages(4);
    let outstandingMax = 0;
    let answered = 0;
    const server = await fakeServer(maildrop({
      messages,
      on: {
        RETR: async (arg, conn) => {
          await sleep(10); // a pipelining client would send its next RETR meanwhile
          outstandingMax = Math.max(outstandingMax, server.received.filter((l) => l.startsWith('RETR')).length - answered);
          const m = messages[Number(arg) - 1] as { bytes: Buffer };
          await conn.send(Buffer.concat([Buffer.from('+OK\r\n'), stuffed(m.bytes)]));
          answered += 1;
        },
      },
    }));
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    const listing = await session.list(null);
    const out: string[] = [];
    for await (const f of session.stream(listing.candidates, 1024 * 1024)) {
      out.push(f.candidate.serverId);
      await sleep(20);
      // Asked for only when the loop takes the next message.
      expect(server.received.filter((l) => l.startsWith('RETR'))).toHaveLength(out.length);
    }
    expect(out).toEqual(messages.map((m) => m.uid));
    expect(outstandingMax).toBe(1);
    await session.close();
  });

  it('fails only the message the server refuses, and carries on with the ones pipelined after it', async () => {
    const messages = manyMessages(5);
    const server = await fakeServer(maildrop({
      capa: ['USER', 'UIDL', 'PIPELINING'],
      messages,
      on: {
        RETR: async (arg, conn) => {
          if (arg === '3') return conn.send('-ERR [SYS/PERM] cannot read message 3\r\n');
          const m = messages[Number(arg) - 1] as { bytes: Buffer };
          return conn.send(Buffer.concat([Buffer.from('+OK\r\n'), stuffed(m.bytes)]));
        },
      },
    }));
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    const out = await collect(session, (await session.list(null)).candidates);
    expect(out.map((o) => [o.id, o.raw !== undefined, o.error?.constructor.name])).toEqual([
      ['uid-1', true, undefined],
      ['uid-2', true, undefined],
      ['uid-3', false, 'ProtocolError'],
      ['uid-4', true, undefined],
      ['uid-5', true, undefined],
    ]);
    expect((out[2]?.error as ProtocolError).serverResponse).toContain('cannot read message 3');
    expect(out[3]?.raw?.equals((messages[3] as { bytes: Buffer }).bytes)).toBe(true);
    await session.close();
  });

  it('throws a cut connection with RETRs still on the wire, leaving no unhandled rejection', async () => {
    const messages = manyMessages(6);
    const server = await fakeServer(maildrop({
      capa: ['USER', 'UIDL', 'PIPELINING'],
      messages,
      on: {
        RETR: async (arg, conn) => {
          const m = messages[Number(arg) - 1] as { bytes: Buffer };
          if (arg !== '3') return conn.send(Buffer.concat([Buffer.from('+OK\r\n'), stuffed(m.bytes)]));
          await conn.send(Buffer.concat([Buffer.from('+OK\r\n'), m.bytes.subarray(0, 10)]));
          conn.destroy();
        },
      },
    }));
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    const got: string[] = [];
    const err = await caught((async () => {
      for await (const f of session.stream((await session.list(null)).candidates, 1024 * 1024)) got.push(f.candidate.serverId);
    })());
    expect(err).toBeInstanceOf(ConnectionError);
    expect(got).toEqual(['uid-1', 'uid-2']);
    await sleep(20); // any stray rejection of RETR 4..6 would surface now and fail the run
  });

  it('throws, rather than blames one message, when the answers stop making sense mid-window', async () => {
    const messages = manyMessages(4);
    const server = await fakeServer(maildrop({
      capa: ['USER', 'UIDL', 'PIPELINING'],
      messages,
      on: {
        RETR: async (arg, conn) => {
          const m = messages[Number(arg) - 1] as { bytes: Buffer };
          if (arg === '2') return conn.send('HTTP/1.1 500 Oops\r\n');
          return conn.send(Buffer.concat([Buffer.from('+OK\r\n'), stuffed(m.bytes)]));
        },
      },
    }));
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    const got: string[] = [];
    const err = await caught((async () => {
      for await (const f of session.stream((await session.list(null)).candidates, 1024 * 1024)) got.push(f.candidate.serverId);
    })());
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toContain('broke the protocol');
    // Message 1 may or may not have been handed out (its answer can share a read with the bad
    // line); none after it is, and none is blamed with a per-message error.
    expect(got.filter((id) => id !== 'uid-1')).toEqual([]);
  });

  it('keeps at most 32 RETRs and about 4 MB of LIST sizes on the wire', async () => {
    for (const [count, size, expected] of [[40, 0, 32], [8, 1_000_000, 4]] as const) {
      const messages = manyMessages(count, size);
      let seenAtFirst = 0;
      let first = true;
      const server = await fakeServer(maildrop({
        capa: ['USER', 'UIDL', 'PIPELINING'],
        messages,
        on: {
          RETR: async (arg, conn) => {
            if (first) {
              first = false;
              await sleep(40);
              seenAtFirst = server.received.filter((l) => l.startsWith('RETR')).length;
            }
            const m = messages[Number(arg) - 1] as { bytes: Buffer };
            await conn.send(Buffer.concat([Buffer.from('+OK\r\n'), stuffed(m.bytes)]));
          },
        },
      }));
      const session = await pop3Source(mailbox(server.port), PASSWORD).open();
      const out = await collect(session, (await session.list(null)).candidates);
      expect(seenAtFirst, `${count} messages of ${size} bytes`).toBe(expected);
      expect(out.every((o, i) => o.raw?.equals((messages[i] as { bytes: Buffer }).bytes))).toBe(true);
      await session.close();
    }
  });

  it('asks for a message larger than the window only when the loop asks for it', async () => {
    const messages = [...manyMessages(1), ...manyMessages(1, 5_000_000), ...manyMessages(1)].map((m, i) => ({ ...m, uid: `uid-${i + 1}` }));
    const server = await fakeServer(maildrop({ capa: ['USER', 'UIDL', 'PIPELINING'], messages }));
    const session = await pop3Source({ ...mailbox(server.port), maxMessageBytes: 10_000_000 }, PASSWORD).open();
    const iterator = session.stream((await session.list(null)).candidates, 10_000_000)[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.candidate.serverId).toBe('uid-1');
    await sleep(50);
    expect(server.received.filter((l) => l.startsWith('RETR'))).toEqual(['RETR 1']);
    const big = await iterator.next();
    expect(big.value?.raw?.equals((messages[1] as { bytes: Buffer }).bytes)).toBe(true);
    expect((await iterator.next()).value?.candidate.serverId).toBe('uid-3');
    expect((await iterator.next()).done).toBe(true);
    await session.close();
  });

  it('lets the loop stop early: the answers still on the wire are read and QUIT follows them', async () => {
    const messages = manyMessages(8);
    const server = await fakeServer(maildrop({ capa: ['USER', 'UIDL', 'PIPELINING'], messages }));
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    for await (const f of session.stream((await session.list(null)).candidates, 1024 * 1024)) {
      expect(f.candidate.serverId).toBe('uid-1');
      break;
    }
    await session.close();
    expect(server.received.at(-1)).toBe('QUIT');
    expect(server.received.filter((l) => l.startsWith('RETR'))).toHaveLength(8);
  });

  it('times out a pipelined RETR the server never answers, naming it', async () => {
    const messages = manyMessages(3);
    const server = await fakeServer(maildrop({
      capa: ['USER', 'UIDL', 'PIPELINING'],
      messages,
      on: {
        RETR: async (arg, conn) => {
          if (arg !== '1') return; // silence from RETR 2 on
          const m = messages[Number(arg) - 1] as { bytes: Buffer };
          await conn.send(Buffer.concat([Buffer.from('+OK\r\n'), stuffed(m.bytes)]));
        },
      },
    }));
    const session = await pop3Source(mailbox(server.port, { commandMs: 300 }), PASSWORD).open();
    const got: string[] = [];
    const err = await caught((async () => {
      for await (const f of session.stream((await session.list(null)).candidates, 1024 * 1024)) got.push(f.candidate.serverId);
    })());
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toContain('RETR 2');
    expect(got).toEqual(['uid-1']);
  });

  it('sends the DELEs of an acknowledgement at once; a refused one fails it, the confirmed ones stay marked', async () => {
    const messages = manyMessages(5);
    let seenAtFirst = 0;
    let first = true;
    const server = await fakeServer(maildrop({
      capa: ['USER', 'UIDL', 'PIPELINING'],
      messages,
      on: {
        DELE: async (arg, conn) => {
          if (first) {
            first = false;
            await sleep(40);
            seenAtFirst = server.received.filter((l) => l.startsWith('DELE')).length;
          }
          return conn.send(arg === '2' ? '-ERR [SYS/TEMP] try later\r\n' : `+OK message ${arg} deleted\r\n`);
        },
      },
    }));
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    await session.list(null);
    const err = await caught(session.acknowledge(['uid-1', 'uid-2', 'uid-3', 'uid-4']));
    expect(err).toBeInstanceOf(ProtocolError);
    expect(seenAtFirst).toBe(4);
    // Only the refused one is sent again.
    await caught(session.acknowledge(['uid-1', 'uid-2', 'uid-3', 'uid-4']));
    expect(server.received.filter((l) => l.startsWith('DELE'))).toEqual(['DELE 1', 'DELE 2', 'DELE 3', 'DELE 4', 'DELE 2']);
    session.abort();
  });

  it('stops at the first refused DELE without PIPELINING', async () => {
    const server = await fakeServer(maildrop({
      messages: manyMessages(4),
      on: { DELE: (arg, conn) => conn.send(arg === '2' ? '-ERR no\r\n' : '+OK\r\n') },
    }));
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    await session.list(null);
    await expect(session.acknowledge(['uid-1', 'uid-2', 'uid-3'])).rejects.toBeInstanceOf(ProtocolError);
    expect(server.received.filter((l) => l.startsWith('DELE'))).toEqual(['DELE 1', 'DELE 2']);
    session.abort();
  });

  it('asks the sizes of a few new messages with LIST n, pipelined, and only of those', async () => {
    const messages = manyMessages(6);
    let answering = false;
    let seenAtFirst = 0;
    const listAll = maildrop({ messages });
    const server = await fakeServer(maildrop({
      capa: ['USER', 'UIDL', 'PIPELINING'],
      messages,
      on: {
        LIST: async (arg, conn) => {
          if (arg === '') return listAll('LIST', conn);
          if (!answering) {
            answering = true;
            await sleep(40);
            seenAtFirst = server.received.filter((l) => l.startsWith('LIST ')).length;
          }
          return conn.send(`+OK ${arg} ${(messages[Number(arg) - 1] as { bytes: Buffer }).bytes.length}\r\n`);
        },
      },
    }));
    const session = await pop3Source(mailbox(server.port), PASSWORD).open();
    const listing = await session.list(null, (ids) => new Set(ids.filter((id) => !['uid-2', 'uid-5'].includes(id))));
    expect(listing.candidates.map((c) => c.size)).toEqual([0, (messages[1] as { bytes: Buffer }).bytes.length, 0, 0, (messages[4] as { bytes: Buffer }).bytes.length, 0]);
    expect(server.received.slice(-3)).toEqual(['UIDL', 'LIST 2', 'LIST 5']);
    expect(seenAtFirst).toBe(2);
    await session.close();
  });
});

describe('UIDL and LIST answers', () => {
  async function listingOf(uidlBody: string, listBody?: string): Promise<{ uidl: unknown; list: unknown }> {
    const server = await fakeServer(maildrop({
      on: {
        UIDL: (_a, conn) => conn.send(`+OK\r\n${uidlBody}.\r\n`),
        LIST: (_a, conn) => conn.send(`+OK\r\n${listBody ?? ''}.\r\n`),
      },
    }));
    const client = await Pop3Client.connect({ mailbox: mailbox(server.port) });
    await client.login('alice', PASSWORD);
    const uidl = await client.uidl().catch((err: unknown) => err);
    const list = listBody === undefined ? undefined : await client.list().catch((err: unknown) => err);
    client.destroy();
    return { uidl, list };
  }

  it('reads lines with extra blanks and tabs, trailing text, blank lines and bare LF endings', async () => {
    const id70 = 'x'.repeat(70);
    const { uidl, list } = await listingOf(`1 a\r\n  2\tb-!~ trailing words\r\n\r\n3 ${id70}\n`, '1 10\r\n2 20 extra\r\n\r\n3\t30\n');
    expect(uidl).toEqual([{ number: 1, uid: 'a' }, { number: 2, uid: 'b-!~' }, { number: 3, uid: id70 }]);
    expect(list).toEqual([{ number: 1, size: 10 }, { number: 2, size: 20 }, { number: 3, size: 30 }]);
  });

  it('refuses a unique-id over 70 characters, one with a control or 8-bit character, and a line without a number', async () => {
    for (const bad of [`1 ${'x'.repeat(71)}\r\n`, '1 a\x01b\r\n', '1 caf\xe9\r\n', 'abc def\r\n', '1\r\n']) {
      const { uidl } = await listingOf(`7 fine\r\n${bad}`);
      expect(uidl, JSON.stringify(bad)).toBeInstanceOf(ProtocolError);
      expect((uidl as Error).message).toContain('unreadable UIDL line');
    }
  });

  it('refuses a LIST line whose size is not a number', async () => {
    const { list } = await listingOf('1 a\r\n', '1 ten\r\n');
    expect(list).toBeInstanceOf(ProtocolError);
  });
});

describe('ListingReader', () => {
  const read = (pieces: readonly Buffer[]) => {
    const reader = new ListingReader('UIDL', UIDL_LINE, (number, uid) => ({ number, uid }));
    for (const p of pieces) reader.push(p);
    return reader.finish();
  };
  const body = Buffer.from('1 aaa\r\n2 b.b\r\n\r\n  3\tccc more\r\n4 d\n5 eeeee', 'latin1');
  const want = [{ number: 1, uid: 'aaa' }, { number: 2, uid: 'b.b' }, { number: 3, uid: 'ccc' }, { number: 4, uid: 'd' }, { number: 5, uid: 'eeeee' }];

  it('reads the same entries however the answer is split, down to one byte a piece', () => {
    for (let i = 0; i <= body.length; i += 1) {
      for (let j = i; j <= body.length; j += 1) {
        const got = read([body.subarray(0, i), body.subarray(i, j), body.subarray(j)]);
        if (got.failure !== undefined || JSON.stringify(got.entries) !== JSON.stringify(want)) throw new Error(`split at ${i},${j}: ${JSON.stringify(got)}`);
      }
    }
    expect(read([...body].map((b) => Buffer.from([b]))).entries).toEqual(want);
  });

  it('reports the first unreadable line, wherever the pieces split it', () => {
    const bad = Buffer.from('1 a\r\n2 b\x01c\r\n3 c\r\n', 'latin1');
    for (let i = 0; i <= bad.length; i += 1) {
      expect(read([bad.subarray(0, i), bad.subarray(i)]).failure, `split at ${i}`).toBe('unreadable UIDL line: "2 b\\u0001c\\r\\n"');
    }
  });

  it('gives up on a line that never ends instead of growing it without bound', () => {
    const pieces = Array.from({ length: 100 }, () => Buffer.from('x'.repeat(100)));
    expect(read(pieces).failure).toMatch(/longer than 1024 bytes/);
  });
});
