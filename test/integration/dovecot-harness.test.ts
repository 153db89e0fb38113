/**
 * Smoke test of the private-Dovecot harness (test/support/dovecot.ts), spoken to with raw
 * node:net / node:tls only, no project code: if this file fails, every other integration test
 * would fail for the wrong reason.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecotAvailable, startDovecot, waitForPort, type DovecotServer } from '../support/dovecot.js';

/** Minimal line-oriented client: send a line, read until a line matches. */
class LineClient {
  private buffer = '';
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;

  constructor(public socket: Socket | TLSSocket) {
    this.attach(socket);
  }

  private attach(socket: Socket | TLSSocket): void {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.waiter?.();
    });
    socket.on('error', (err) => {
      this.failure = err;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.failure ??= new Error('connection closed');
      this.waiter?.();
    });
  }

  /** Reads lines until one satisfies `done`; returns all lines read (the last one included). */
  async readUntil(done: (line: string) => boolean, timeoutMs = 5000): Promise<string[]> {
    const lines: string[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let eol: number;
      while ((eol = this.buffer.indexOf('\r\n')) !== -1) {
        const line = this.buffer.slice(0, eol);
        this.buffer = this.buffer.slice(eol + 2);
        lines.push(line);
        if (done(line)) return lines;
      }
      if (this.failure !== undefined) throw new Error(`${this.failure.message}; read so far: ${JSON.stringify(lines)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout; read so far: ${JSON.stringify(lines)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  line(): Promise<string> {
    return this.readUntil(() => true).then((lines) => lines[0]!);
  }

  send(text: string): void {
    this.socket.write(`${text}\r\n`);
  }

  /** IMAP: sends `TAG command`, returns the untagged lines and the tagged status line. */
  async imap(tag: string, command: string): Promise<{ untagged: string[]; status: string }> {
    this.send(`${tag} ${command}`);
    const lines = await this.readUntil((line) => line.startsWith(`${tag} `));
    return { untagged: lines.slice(0, -1), status: lines[lines.length - 1]! };
  }

  /** POP3: sends a command, returns its status line. */
  async pop3(command: string): Promise<string> {
    this.send(command);
    return this.line();
  }

  /** POP3: reads a multi-line answer up to the "." line (status line first). */
  async pop3Multi(command: string): Promise<string[]> {
    this.send(command);
    const first = await this.line();
    if (!first.startsWith('+OK')) return [first];
    return [first, ...(await this.readUntil((line) => line === '.')).slice(0, -1)];
  }

  /** Upgrades the connection to TLS (after STARTTLS/STLS), verifying against `ca`. */
  async startTls(options: ConnectionOptions): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    plain.pause();
    const secure = await openTls({ ...options, socket: plain });
    this.buffer = '';
    this.socket = secure;
    this.attach(secure);
  }

  close(): void {
    this.socket.destroy();
  }
}

function openTls(options: ConnectionOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(options, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function openPlain(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function message(subject: string): Buffer {
  return Buffer.from(
    `From: Sender <sender@example.test>\r\nTo: alice@example.test\r\nSubject: ${subject}\r\n`
    + `Message-ID: <${subject.replace(/\W/g, '')}@example.test>\r\nDate: Thu, 02 Jan 2020 03:04:05 +0000\r\n`
    + `\r\nBody of ${subject}.\r\n`,
  );
}

describe('private Dovecot harness', () => {
  let dovecot: DovecotServer;
  let ca: string;
  const delivered: string[] = [];
  const mtime = new Date('2020-01-02T03:04:05Z');

  beforeAll(async () => {
    if (!dovecotAvailable()) {
      throw new Error('Dovecot is not installed: apt-get install dovecot-imapd dovecot-pop3d (see .ci/run)');
    }
    dovecot = await startDovecot({ users: { alice: 's3cret pass' } });
    ca = readFileSync(dovecot.caFile, 'utf8');
    delivered.push(await dovecot.deliver('alice', message('first message'), { mtime }));
    delivered.push(await dovecot.deliver('alice', message('second message')));
  });

  afterAll(async () => {
    await dovecot?.stop();
  });

  const tlsOptions = (port: number, extra: ConnectionOptions = {}): ConnectionOptions =>
    ({ host: dovecot.host, port, ca, ...extra });

  it('listens on 127.0.0.2 with four distinct ports and a CA file', () => {
    expect(dovecot.host).toBe('127.0.0.2');
    const ports = Object.values(dovecot.ports);
    expect(new Set(ports).size).toBe(4);
    expect(existsSync(dovecot.caFile)).toBe(true);
    expect(delivered[0]).not.toBe(delivered[1]);
  });

  it('IMAPS: logs in, SELECT INBOX shows 2 EXISTS in delivery order, INTERNALDATE is the mtime', async () => {
    const client = new LineClient(await openTls(tlsOptions(dovecot.ports.imaps)));
    try {
      expect(await client.line()).toMatch(/^\* OK /);
      expect((await client.imap('a', 'LOGIN alice "s3cret pass"')).status).toMatch(/^a OK/);
      const select = await client.imap('b', 'SELECT INBOX');
      expect(select.status).toMatch(/^b OK/);
      expect(select.untagged).toContain('* 2 EXISTS');
      const fetch = await client.imap('c', 'FETCH 1:2 (INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
      expect(fetch.status).toMatch(/^c OK/);
      const text = fetch.untagged.join('\n');
      expect(text.indexOf('first message')).toBeGreaterThan(-1);
      expect(text.indexOf('first message')).toBeLessThan(text.indexOf('second message'));
      const internal = /^\* 1 FETCH \(INTERNALDATE "([^"]+)"/m.exec(text)?.[1];
      expect(internal).toBeDefined();
      const [, day, mon, rest] = /^\s*(\d+)-(\w+)-(.*)$/.exec(internal!) ?? [];
      expect(new Date(`${day} ${mon} ${rest}`).getTime()).toBe(mtime.getTime());
      await client.imap('d', 'LOGOUT');
    } finally {
      client.close();
    }
    // SELECT moved the files from new/ to cur/; names stay what deliver() returned.
    const onDisk = await dovecot.listMaildir('alice');
    expect(onDisk.map((e) => e.name)).toEqual([...delivered].sort());
    expect(onDisk.every((e) => e.dir === 'cur' && e.flags === '')).toBe(true);
  });

  it('IMAP: LOGIN is refused before STARTTLS and works after it', async () => {
    const client = new LineClient(await openPlain(dovecot.host, dovecot.ports.imap));
    try {
      expect(await client.line()).toMatch(/^\* OK .*STARTTLS.*LOGINDISABLED/);
      const refused = await client.imap('a', 'LOGIN alice "s3cret pass"');
      expect(refused.status).toMatch(/^a (NO|BAD)/);
      expect(refused.status).toContain('PRIVACYREQUIRED');
      expect((await client.imap('b', 'STARTTLS')).status).toMatch(/^b OK/);
      await client.startTls(tlsOptions(dovecot.ports.imap));
      expect((await client.imap('c', 'LOGIN alice "s3cret pass"')).status).toMatch(/^c OK/);
      expect((await client.imap('d', 'SELECT INBOX')).untagged).toContain('* 2 EXISTS');
      await client.imap('e', 'LOGOUT');
    } finally {
      client.close();
    }
  });

  it('POP3S: USER/PASS, STAT counts 2, UIDLs are the Maildir base names', async () => {
    const client = new LineClient(await openTls(tlsOptions(dovecot.ports.pop3s)));
    try {
      expect(await client.line()).toMatch(/^\+OK/);
      expect(await client.pop3('USER alice')).toMatch(/^\+OK/);
      expect(await client.pop3('PASS s3cret pass')).toMatch(/^\+OK/);
      expect(await client.pop3('STAT')).toMatch(/^\+OK 2 \d+$/);
      const uidl = await client.pop3Multi('UIDL');
      expect(uidl[0]).toMatch(/^\+OK/);
      expect(uidl.slice(1)).toEqual(delivered.map((name, i) => `${i + 1} ${name}`));
      expect(await client.pop3('QUIT')).toMatch(/^\+OK/);
    } finally {
      client.close();
    }
  });

  it('POP3: USER/PASS is refused before STLS and works after it', async () => {
    const client = new LineClient(await openPlain(dovecot.host, dovecot.ports.pop3));
    try {
      expect(await client.line()).toMatch(/^\+OK/);
      const user = await client.pop3('USER alice');
      // Dovecot already refuses USER; accept a refusal at PASS as well.
      const refusal = user.startsWith('-ERR') ? user : await client.pop3('PASS s3cret pass');
      expect(refusal).toMatch(/^-ERR/);
      expect(await client.pop3('STLS')).toMatch(/^\+OK/);
      await client.startTls(tlsOptions(dovecot.ports.pop3));
      expect(await client.pop3('USER alice')).toMatch(/^\+OK/);
      expect(await client.pop3('PASS s3cret pass')).toMatch(/^\+OK/);
      expect(await client.pop3('STAT')).toMatch(/^\+OK 2 \d+$/);
      expect(await client.pop3('QUIT')).toMatch(/^\+OK/);
    } finally {
      client.close();
    }
  });

  it('TLS is verified: no CA fails, a wrong name fails', async () => {
    const noCa = openTls({ host: dovecot.host, port: dovecot.ports.imaps });
    await expect(noCa).rejects.toMatchObject({ code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/) });
    const wrongName = openTls(tlsOptions(dovecot.ports.pop3s, { servername: 'mail.example.test' }));
    await expect(wrongName).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    const byName = await openTls(tlsOptions(dovecot.ports.pop3s, { servername: 'localhost' }));
    byName.destroy();
  });

  async function imapsLogin(user: string, password: string): Promise<string> {
    const client = new LineClient(await openTls(tlsOptions(dovecot.ports.imaps)));
    try {
      await client.line();
      const { status } = await client.imap('a', `LOGIN ${user} "${password}"`);
      if (status.startsWith('a OK')) await client.imap('z', 'LOGOUT');
      return status;
    } finally {
      client.close();
    }
  }

  it('users: added after start log in at once; unknown users fail like wrong passwords; passwords change', async () => {
    await dovecot.addUser('carol', 'first');
    expect(await imapsLogin('carol', 'first')).toMatch(/^a OK/);
    // Both are plain authentication failures (not [UNAVAILABLE]), and no penalty slows what follows.
    expect(await imapsLogin('nobody', 'x')).toMatch(/^a NO \[AUTHENTICATIONFAILED\]/);
    expect(await imapsLogin('carol', 'wrong')).toMatch(/^a NO \[AUTHENTICATIONFAILED\]/);
    await dovecot.addUser('carol', 'second');
    const started = Date.now();
    expect(await imapsLogin('carol', 'second')).toMatch(/^a OK/);
    expect(Date.now() - started).toBeLessThan(400);
  });

  it('delivers into folders and into cur/ with flags', async () => {
    await dovecot.addUser('bob', 'other');
    const name = await dovecot.deliver('bob', message('archived'), { folder: 'Archive/2024', flags: 'SF' });
    expect(await dovecot.listMaildir('bob', 'Archive/2024')).toEqual([
      { name, flags: 'FS', dir: 'cur', file: `${name}:2,FS` },
    ]);
    expect(await dovecot.listMaildir('bob')).toEqual([]);
    expect(await dovecot.listMaildir('bob', 'Nope')).toEqual([]);
    const client = new LineClient(await openTls(tlsOptions(dovecot.ports.imaps)));
    try {
      await client.line();
      expect((await client.imap('a', 'LOGIN bob other')).status).toMatch(/^a OK/);
      const status = await client.imap('b', 'STATUS "Archive/2024" (MESSAGES UNSEEN)');
      expect(status.untagged.join('\n')).toMatch(/MESSAGES 1 UNSEEN 0/);
      await client.imap('c', 'LOGOUT');
    } finally {
      client.close();
    }
  });

  it('names a file with its sizes when asked, as Dovecot\'s own delivery does, and Dovecot reports them', async () => {
    await dovecot.addUser('carol', 'third');
    // Two bare LFs: the size with CRLF line ends is two more than the file.
    const raw = Buffer.from('Subject: sized\nFrom: a@example.com\r\n\r\nbody\n');
    const name = await dovecot.deliver('carol', raw, { sizes: true });
    expect(name).toMatch(new RegExp(`,S=${raw.length},W=${raw.length + 2}$`));
    const client = new LineClient(await openTls(tlsOptions(dovecot.ports.imaps)));
    try {
      await client.line();
      expect((await client.imap('a', 'LOGIN carol third')).status).toMatch(/^a OK/);
      await client.imap('b', 'SELECT INBOX');
      // Dovecot takes the size from the name: a wrong W= would show here.
      const fetch = await client.imap('c', 'FETCH 1 (RFC822.SIZE)');
      expect(fetch.untagged.join('\n')).toContain(`RFC822.SIZE ${raw.length + 2}`);
      await client.imap('d', 'LOGOUT');
    } finally {
      client.close();
    }
  });

  it('restart() keeps ports, users and mail', async () => {
    await dovecot.restart();
    const client = new LineClient(await openTls(tlsOptions(dovecot.ports.imaps)));
    try {
      await client.line();
      expect((await client.imap('a', 'LOGIN alice "s3cret pass"')).status).toMatch(/^a OK/);
      expect((await client.imap('b', 'SELECT INBOX')).untagged).toContain('* 2 EXISTS');
      await client.imap('c', 'LOGOUT');
    } finally {
      client.close();
    }
  });

  it('stop() closes every port, removes the temp dir, and is idempotent', async () => {
    await dovecot.stop();
    await Promise.all(Object.values(dovecot.ports).map((port) =>
      expect(waitForPort(dovecot.host, port, 100)).rejects.toThrow(/did not accept/)));
    expect(existsSync(dovecot.dir)).toBe(false);
    await dovecot.stop();
  });
});
