import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionError, ProtocolError, TimeoutError } from '../../src/errors.js';
import { ImapRefusal, ImapWire, type FetchedSection } from '../../src/sources/imap-wire.js';
import { mailboxConfig } from '../fixtures/mailbox-config.js';

/**
 * ImapWire against a scripted server on 127.0.0.1: the server side sees each command line and
 * answers with what the test writes. The wire's behaviour against Dovecot is covered by the
 * integration tests (fetch-protocols, after-actions, large-message, exactly-once).
 */
interface Scripted {
  wire: ImapWire;
  /** The client's end, as the wire reads it. */
  socket: Socket;
  /** The server's end of the connection. */
  peer: Socket;
  /** The next command line the client sends, without CRLF. */
  nextCommand(): Promise<string>;
}

let server: Server | undefined;
const wires: ImapWire[] = [];
afterEach(async () => {
  for (const w of wires.splice(0)) w.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function scripted(commandMs = 2000): Promise<Scripted> {
  let accept!: (s: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  server = createServer(accept);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const socket = connect(port, '127.0.0.1');
  const peer = await accepted;
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  let buffered = '';
  peer.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 2);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  peer.on('error', () => {});
  const wire = new ImapWire({ input: socket, output: socket, socket }, mailboxConfig({ host: '127.0.0.1', port, timeouts: { connectMs: 1000, commandMs } }));
  wires.push(wire);
  return {
    wire,
    socket,
    peer,
    nextCommand: () => {
      const line = lines.shift();
      return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

const literal = (uid: number, body: string) => `* ${uid} FETCH (UID ${uid} BODY[] {${Buffer.byteLength(body)}}\r\n${body})\r\n`;

describe('ImapWire', () => {
  it('yields each message as its response completes, before the FETCH does', async () => {
    const { wire, peer, nextCommand } = await scripted();
    const iterator = wire.fetch('1:2', 'BODY.PEEK[]', 1000)[Symbol.asyncIterator]();
    const first = iterator.next();
    const command = await nextCommand();
    expect(command).toMatch(/^(\S+) UID FETCH 1:2 \(UID BODY\.PEEK\[\]\)$/);
    peer.write(literal(1, 'Subject: one\r\n\r\nbody'));
    expect((await first).value).toEqual({ uid: 1, bytes: Buffer.from('Subject: one\r\n\r\nbody') });
    const second = iterator.next();
    peer.write(literal(2, 'two'));
    expect((await second).value).toEqual({ uid: 2, bytes: Buffer.from('two') });
    const end = iterator.next();
    peer.write(`${command.split(' ')[0]} OK done\r\n`);
    expect((await end).done).toBe(true);
  });

  it('pauses reading while the consumer is far behind, and loses nothing', async () => {
    const { wire, socket, peer, nextCommand } = await scripted();
    const body = (i: number) => Buffer.alloc(6 * 1024 * 1024, 0x61 + i);
    const iterator = wire.fetch('1:4', 'BODY.PEEK[]', 10 * 1024 * 1024)[Symbol.asyncIterator]();
    const first = iterator.next();
    const tag = (await nextCommand()).split(' ')[0];
    for (let i = 0; i < 4; i++) peer.write(Buffer.concat([Buffer.from(`* ${i + 1} FETCH (UID ${i + 1} BODY[] {${body(i).length}}\r\n`), body(i), Buffer.from(')\r\n')]));
    peer.write(`${tag} OK\r\n`);
    expect((await first).value?.uid).toBe(1);
    // Nothing more is taken for now: once over 16 MB are queued, the wire stops reading.
    const deadline = Date.now() + 5000;
    while (!socket.isPaused() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(socket.isPaused()).toBe(true);
    const rest: FetchedSection[] = [];
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) rest.push(r.value);
    expect(rest.map((m) => m.uid)).toEqual([2, 3, 4]);
    for (const m of rest) expect((m.bytes as Buffer).equals(body(m.uid - 1))).toBe(true);
    expect(socket.isPaused()).toBe(false);
  });

  it('passes over unsolicited FETCH data and reports an oversize literal and a NIL body', async () => {
    const { wire, peer, nextCommand } = await scripted();
    const got: FetchedSection[] = [];
    const run = (async () => {
      for await (const m of wire.fetch('3:5', 'BODY.PEEK[]', 10)) got.push(m);
    })();
    const tag = (await nextCommand()).split(' ')[0];
    peer.write(`* 9 FETCH (FLAGS (\\Seen) MODSEQ (4))\r\n* 2 EXISTS\r\n${literal(3, 'far more than ten bytes')}* 4 FETCH (UID 4 BODY[] NIL)\r\n${literal(5, 'short')}${tag} OK\r\n`);
    await run;
    expect(got).toEqual([{ uid: 3, bytes: 'too-large' }, { uid: 4, bytes: 'missing' }, { uid: 5, bytes: Buffer.from('short') }]);
  });

  it('lists sizes by UID, passing over responses without them and repeats', async () => {
    const { wire, peer, nextCommand } = await scripted();
    const listing = wire.sizes('5:*');
    const line = await nextCommand();
    expect(line).toMatch(/ UID FETCH 5:\* \(UID RFC822\.SIZE\)$/);
    peer.write('* 1 FETCH (UID 5 RFC822.SIZE 120)\r\n* 1 FETCH (FLAGS (\\Seen))\r\n* 2 FETCH (RFC822.SIZE 7 UID 8)\r\n* 1 FETCH (UID 5 RFC822.SIZE 999)\r\n');
    peer.write(`${line.split(' ')[0]} OK Fetch completed\r\n`);
    expect([...(await listing)]).toEqual([[5, 120], [8, 7]]);
  });

  it('rejects a refused command with the server code, and the connection goes on', async () => {
    const { wire, peer, nextCommand } = await scripted();
    const create = wire.command('CREATE "Done"', 'CREATE');
    const tag = (await nextCommand()).split(' ')[0];
    peer.write(`${tag} NO [ALREADYEXISTS] Mailbox already exists\r\n`);
    const refusal = await create.catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(ImapRefusal);
    expect(refusal).toMatchObject({ serverResponseCode: 'ALREADYEXISTS', responseText: 'Mailbox already exists', code: 'PROTOCOL' });
    const store = wire.command('UID STORE 1 +FLAGS.SILENT (\\Seen)', 'STORE');
    const next = await nextCommand();
    expect(next).toMatch(/ UID STORE 1 \+FLAGS\.SILENT \(\\Seen\)$/);
    peer.write(`${next.split(' ')[0]} OK Store completed\r\n`);
    await expect(store).resolves.toBeUndefined();
  });

  it('sends the next command only after the answer to a fetch left early', async () => {
    const { wire, peer, nextCommand } = await scripted();
    const first = (async () => {
      for await (const m of wire.fetch('1:2', 'BODY.PEEK[]', 1000)) return m;
      return undefined;
    })();
    const fetchTag = (await nextCommand()).split(' ')[0];
    peer.write(literal(1, 'one'));
    expect(await first).toEqual({ uid: 1, bytes: Buffer.from('one') });
    const store = wire.command('UID STORE 1 +FLAGS.SILENT (\\Seen)', 'STORE');
    const order: string[] = [];
    const sent = nextCommand().then((line) => (order.push('store sent'), line));
    await new Promise((resolve) => setTimeout(resolve, 50));
    order.push('fetch answered');
    peer.write(`${literal(2, 'two')}${fetchTag} OK\r\n`);
    const line = await sent;
    expect(order).toEqual(['fetch answered', 'store sent']);
    peer.write(`${line.split(' ')[0]} OK\r\n`);
    await expect(store).resolves.toBeUndefined();
  });

  it('ends with ConnectionError naming the BYE when the server hangs up mid-command', async () => {
    const { wire, peer, nextCommand } = await scripted();
    const store = wire.command('UID STORE 1 +FLAGS.SILENT (\\Seen)', 'STORE');
    await nextCommand();
    peer.end('* BYE Server shutting down\r\n');
    const err = await store.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toContain('Server shutting down');
    await expect(wire.command('NOOP', 'NOOP')).rejects.toBe(err);
  });

  it('passes over the tail of a response imapflow had half read, and only as the first line', async () => {
    const { wire, peer, nextCommand } = await scripted();
    const noop = wire.command('NOOP', 'NOOP');
    const tag = (await nextCommand()).split(' ')[0];
    peer.write(`STS\r\n* 5 EXISTS\r\n${tag} OK\r\n`);
    await expect(noop).resolves.toBeUndefined();
    const again = wire.command('NOOP', 'NOOP');
    await nextCommand();
    peer.write('STS\r\n');
    await expect(again).rejects.toBeInstanceOf(ProtocolError);
  });

  it('times out a command the server does not answer, and a garbled answer is a protocol error', async () => {
    const silent = await scripted(150);
    const started = Date.now();
    await expect(silent.wire.command('NOOP', 'NOOP')).rejects.toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    server = undefined;

    const garbled = await scripted();
    const noop = garbled.wire.command('NOOP', 'NOOP');
    await garbled.nextCommand();
    garbled.peer.write('Z9 OK not our tag\r\n');
    await expect(noop).rejects.toBeInstanceOf(ProtocolError);
  });

  it('LOGOUT waits for its answer, then closes the connection', async () => {
    const { wire, peer, nextCommand } = await scripted();
    const logout = wire.logout();
    const line = await nextCommand();
    expect(line).toMatch(/ LOGOUT$/);
    const closed = new Promise((resolve) => peer.on('end', resolve));
    peer.write(`* BYE Logging out\r\n${line.split(' ')[0]} OK Logout completed\r\n`);
    await logout;
    await closed;
  });
});
