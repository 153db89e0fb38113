/**
 * What a server really serves, read without mailpoll's code and without imapflow: a minimal raw
 * IMAP client (LOGIN, EXAMINE, `UID FETCH 1:* (UID BODY.PEEK[])`) and a minimal POP3 client
 * (USER/PASS, UIDL, RETR) over node:tls. The conformance run compares what mailpoll stored with
 * these bytes, so they must be byte exact:
 *
 * - IMAP: every message arrives as a literal `{n}\r\n` followed by exactly n octets (RFC 3501
 *   section 4.3); the n octets are taken as they are, nothing is decoded.
 * - POP3: RETR's multi-line answer is split into lines at LF, a leading "." is removed from lines
 *   that start with ".." (dot-unstuffing, RFC 1939 section 3), and the terminating ".\r\n" line is
 *   dropped. Everything else, line endings included, is kept as served.
 *
 * Both read-only: EXAMINE and BODY.PEEK set no flag, and POP3 ends with QUIT without DELE.
 */
import { connect, type TLSSocket } from 'node:tls';

export interface ServerLogin {
  host: string;
  port: number;
  /** PEM of the CA that signed the server's certificate (the test Dovecot's caFile contents). */
  ca: string | Buffer;
  username: string;
  password: string;
  /** Whole-session limit in ms: a hang becomes an error (default 60 s). */
  timeoutMs?: number;
}

export interface ImapServed {
  uidValidity: string;
  /** UID -> the exact octets of BODY[], in the order the server sent them. */
  messages: Map<number, Buffer>;
}

const CRLF = Buffer.from('\r\n');

/** A byte queue over a socket: whole lines (ending in LF) or exactly n bytes, nothing decoded. */
class ByteReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private wake: (() => void) | undefined;
  private failure: Error | undefined;

  constructor(socket: TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.notify();
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed by the server')));
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async more(): Promise<void> {
    if (this.failure) throw this.failure;
    await new Promise<void>((resolve) => { this.wake = resolve; });
  }

  private flatten(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private take(n: number): Buffer {
    const all = this.flatten();
    const out = Buffer.from(all.subarray(0, n)); // a copy: the rest may be freed
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return out;
  }

  /** Exactly n bytes. */
  async bytes(n: number): Promise<Buffer> {
    while (this.length < n) {
      if (this.failure) throw this.failure;
      await this.more();
    }
    return this.take(n);
  }

  /** One line including its LF (and the CR before it, if any). */
  async line(): Promise<Buffer> {
    let searched = 0;
    for (;;) {
      const all = this.flatten();
      const lf = all.indexOf(0x0a, searched);
      if (lf !== -1) return this.take(lf + 1);
      searched = all.length;
      await this.more();
    }
  }
}

/** Opens a TLS connection (certificate verified against `ca`) and arms the session timeout. */
async function open(login: ServerLogin): Promise<{ socket: TLSSocket; reader: ByteReader; done: () => void }> {
  const socket = connect({ host: login.host, port: login.port, ca: login.ca, servername: 'localhost' });
  const reader = new ByteReader(socket);
  const timeoutMs = login.timeoutMs ?? 60_000;
  const timer = setTimeout(() => {
    reader.fail(new Error(`served-bytes session with ${login.host}:${login.port} took more than ${timeoutMs} ms`));
    socket.destroy();
  }, timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
  } catch (err) {
    clearTimeout(timer);
    socket.destroy();
    throw err;
  }
  return { socket, reader, done: () => { clearTimeout(timer); socket.destroy(); } };
}

const ascii = (b: Buffer) => b.toString('latin1');

function imapQuote(s: string): string {
  if (/[\r\n\0]/.test(s)) throw new Error('cannot quote CR, LF or NUL in an IMAP string');
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * One IMAP response: text pieces with the literals between them. A line ending in `{n}\r\n`
 * is followed by n octets and then the rest of the response.
 */
interface ImapResponse { text: string[]; literals: Buffer[] }

async function readImapResponse(reader: ByteReader): Promise<ImapResponse> {
  const text: string[] = [];
  const literals: Buffer[] = [];
  for (;;) {
    const line = ascii(await reader.line());
    const m = /\{(\d+)\}\r?\n$/.exec(line);
    if (m === null) {
      text.push(line.replace(/\r?\n$/, ''));
      return { text, literals };
    }
    text.push(line.slice(0, m.index));
    literals.push(await reader.bytes(Number(m[1])));
  }
}

/** Sends a tagged command and collects the untagged responses until its tagged answer (OK only). */
async function imapCommand(socket: TLSSocket, reader: ByteReader, tag: string, command: string, shown = command): Promise<ImapResponse[]> {
  socket.write(`${tag} ${command}\r\n`);
  const untagged: ImapResponse[] = [];
  for (;;) {
    const r = await readImapResponse(reader);
    const first = r.text[0] ?? '';
    if (first.startsWith(`${tag} `)) {
      if (!first.startsWith(`${tag} OK`)) throw new Error(`IMAP ${shown} failed: ${first}`);
      return untagged;
    }
    untagged.push(r);
  }
}

/** Every message of INBOX, by UID, exactly as the IMAP server serves BODY[]. Changes nothing. */
export async function imapServedBytes(login: ServerLogin): Promise<ImapServed> {
  const { socket, reader, done } = await open(login);
  try {
    const greeting = ascii(await reader.line());
    if (!greeting.startsWith('* OK')) throw new Error(`unexpected IMAP greeting: ${greeting.trim()}`);
    await imapCommand(socket, reader, 'a1', `LOGIN ${imapQuote(login.username)} ${imapQuote(login.password)}`, 'LOGIN');
    const examine = await imapCommand(socket, reader, 'a2', 'EXAMINE INBOX');
    let uidValidity = '';
    for (const r of examine) {
      const m = /\[UIDVALIDITY (\d+)\]/i.exec(r.text.join(''));
      if (m) uidValidity = m[1] ?? '';
    }
    if (uidValidity === '') throw new Error('EXAMINE INBOX answered no UIDVALIDITY');
    const messages = new Map<number, Buffer>();
    const exists = examine.some((r) => /^\* [1-9]\d* EXISTS/i.test(r.text[0] ?? ''));
    if (exists) {
      for (const r of await imapCommand(socket, reader, 'a3', 'UID FETCH 1:* (UID BODY.PEEK[])')) {
        if (!/^\* \d+ FETCH \(/i.test(r.text[0] ?? '')) continue;
        const uid = /UID (\d+)/i.exec(r.text.join(' '));
        // BODY[] is the literal whose preceding text piece ends with "BODY[] ".
        const at = r.text.findIndex((t, i) => i < r.literals.length && /BODY\[\] $/i.test(t));
        if (uid === null) throw new Error(`FETCH response without UID: ${r.text.join(' ').slice(0, 200)}`);
        if (at === -1) {
          // An empty body may come as "" or NIL instead of a literal.
          if (/BODY\[\] (""|NIL)/i.test(r.text.join(' '))) messages.set(Number(uid[1]), Buffer.alloc(0));
          else throw new Error(`FETCH response without BODY[]: ${r.text.join(' ').slice(0, 200)}`);
          continue;
        }
        messages.set(Number(uid[1]), r.literals[at] as Buffer);
      }
    }
    await imapCommand(socket, reader, 'a4', 'LOGOUT').catch(() => []);
    return { uidValidity, messages };
  } finally {
    done();
  }
}

async function popStatus(reader: ByteReader, what: string): Promise<string> {
  const line = ascii(await reader.line()).replace(/\r?\n$/, '');
  if (!line.startsWith('+OK')) throw new Error(`POP3 ${what} failed: ${line}`);
  return line;
}

/** The body of a multi-line answer, dot-unstuffed, its terminating ".\r\n" removed. */
async function popMultiline(reader: ByteReader): Promise<Buffer> {
  const lines: Buffer[] = [];
  for (;;) {
    const line = await reader.line();
    if (line[0] === 0x2e) {
      if (line.length === 3 && line[1] === 0x0d && line[2] === 0x0a) break; // ".\r\n"
      if (line.length === 2 && line[1] === 0x0a) break; // ".\n" (not from Dovecot, but harmless)
      lines.push(line.subarray(1));
    } else {
      lines.push(line);
    }
  }
  return Buffer.concat(lines);
}

/** Every message, by UIDL, exactly as the POP3 server serves RETR. Sends no DELE. */
export async function pop3ServedBytes(login: ServerLogin): Promise<Map<string, Buffer>> {
  const { socket, reader, done } = await open(login);
  try {
    await popStatus(reader, 'greeting');
    if (/[\r\n]/.test(login.username + login.password)) throw new Error('CR or LF in POP3 credentials');
    socket.write(`USER ${login.username}\r\n`);
    await popStatus(reader, 'USER');
    socket.write(`PASS ${login.password}\r\n`);
    await popStatus(reader, 'PASS');
    socket.write('UIDL\r\n');
    await popStatus(reader, 'UIDL');
    const listing = ascii(await popMultiline(reader)).split(CRLF.toString()).filter((l) => l !== '');
    const out = new Map<string, Buffer>();
    for (const entry of listing) {
      const [n, uidl] = entry.split(' ');
      if (n === undefined || uidl === undefined) throw new Error(`bad UIDL line: ${entry}`);
      socket.write(`RETR ${n}\r\n`);
      await popStatus(reader, `RETR ${n}`);
      out.set(uidl, await popMultiline(reader));
    }
    socket.write('QUIT\r\n');
    await popStatus(reader, 'QUIT').catch(() => '');
    return out;
  } finally {
    done();
  }
}
