/**
 * A small POP3 client on node:net / node:tls: connect, STLS, login, and the handful of commands a
 * retriever needs (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 4616/5034 AUTH PLAIN).
 *
 * Why our own and not an npm package: `poplib`'s STLS path calls crypto.createCredentials (gone
 * since Node 11), it decodes bytes as ASCII (8-bit mail is corrupted) and leaves dot-stuffing in
 * the body; `node-pop3` has no STLS, decodes RETR as UTF-8 and can hang when the end marker is
 * split across TCP chunks. Framing lives in framing.ts (pure, byte-level); this file is the I/O.
 *
 * Each command announces the shape of its response to the framer before it is written and waits in
 * `pending`, so answers are paired with commands by order. Commands run one at a time (RFC 1939
 * section 3), except RETR, DELE and `LIST n` when the server announces PIPELINING (RFC 2449 section
 * 6.6): those are written at once and several wait in `pending` together.
 */
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket, type CipherNameAndProtocol, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import type { MailboxConfig } from '../../config/types.js';
import { AuthError, ConnectionError, MailpollError, ProtocolError, TimeoutError, TlsError } from '../../errors.js';
import { describeOAuthChallenge, hasControlChars, xoauth2Response } from '../../auth/sasl.js';
import { classifyNetworkError, tlsOptionsFor } from '../tls-options.js';
import { FramingError, Pop3Framer, type Expectation, type Pop3Response } from './framing.js';

/** Capability name (upper case) -> its arguments, as listed by CAPA (RFC 2449 section 5). */
export type Capabilities = ReadonlyMap<string, readonly string[]>;

export interface Pop3ConnectOptions {
  /** Host, port, TLS mode, timeouts; its name goes into every error. */
  mailbox: MailboxConfig;
  /** node:tls options for implicit TLS and STLS. Default: tlsOptionsFor(mailbox). */
  tlsOptions?: ConnectionOptions;
  /** Longest status line accepted (bytes). Default 8 KiB. */
  maxLineBytes?: number;
  /** Largest UIDL or LIST answer kept in memory (bytes). Default 64 MiB. */
  maxListingBytes?: number;
}

export interface MaildropStat {
  count: number;
  size: number;
}

export interface UidlEntry {
  /** Message number, valid for this session only (RFC 1939 section 4). */
  number: number;
  /** Unique-id, stable across sessions (RFC 1939 section 7). */
  uid: string;
}

/** A UIDL answer: the SHA-256 (hex) of its bytes as served, and its entries, read on first call. */
export interface UidlListing {
  sha256: string;
  /** Throws ProtocolError for an unreadable line. */
  entries(): UidlEntry[];
}

export interface ListEntry {
  number: number;
  size: number;
}

/** The negotiated TLS session, as node:tls reports it (for `mailpoll test`). */
export interface TlsSessionInfo {
  /** e.g. 'TLSv1.3'. */
  protocol: string | null;
  cipher: CipherNameAndProtocol;
  /** The server's leaf certificate; undefined if it sent none. */
  certificate: PeerCertificate | undefined;
  /** Whether the certificate verified (false only with insecureSkipVerify). */
  authorized: boolean;
}

interface PendingCommand {
  /** The command verb and harmless arguments; never a credential. */
  label: string;
  timeoutMs: number;
  resolve: (response: Pop3Response) => void;
  reject: (err: MailpollError) => void;
}

const CAPA_MAX_BYTES = 64 * 1024;
const DEFAULT_MAX_LISTING_BYTES = 64 * 1024 * 1024;
/** RFC 5034 section 4: an AUTH line with an initial response may not exceed 255 octets. */
const AUTH_LINE_MAX = 255;
const SINGLE: Expectation = { shape: 'single' };

/**
 * Refuses a plaintext session the mailbox did not explicitly allow. Config validation refuses it
 * too; this is the last line before a password could cross the wire in the clear.
 */
export function assertTransportAllowed(mailbox: MailboxConfig): void {
  if (mailbox.tls.mode === 'none' && !mailbox.tls.allowPlaintext) {
    throw new TlsError(
      `mailbox ${mailbox.name} has tls: none without allowPlaintext: true; refusing to send a password in plain text`,
      { mailbox: mailbox.name },
    );
  }
}

export class Pop3Client {
  private socket: Socket;
  private readonly mailbox: MailboxConfig;
  private readonly framer: Pop3Framer;
  private readonly maxListingBytes: number;
  private readonly pending: PendingCommand[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The command `timer` is running for. */
  private timerFor: PendingCommand | undefined;
  /**
   * Serialises commands (and multi-step exchanges such as AUTH with a continuation). A pipelined
   * command holds it only while its line is written, not until its answer.
   */
  private lane: Promise<unknown> = Promise.resolve();
  /** Why the session ended; set once, then every command rejects with it. */
  private ended: MailpollError | undefined;
  private caps: Capabilities = new Map();
  private tls: boolean;

  private constructor(socket: Socket, options: Pop3ConnectOptions) {
    this.socket = socket;
    this.mailbox = options.mailbox;
    this.tls = options.mailbox.tls.mode === 'implicit';
    this.framer = new Pop3Framer(options.maxLineBytes === undefined ? {} : { maxLineBytes: options.maxLineBytes });
    this.maxListingBytes = options.maxListingBytes ?? DEFAULT_MAX_LISTING_BYTES;
    this.attach(socket);
  }

  /**
   * Connects, reads the greeting, asks CAPA and, in `starttls` mode, upgrades with STLS and asks
   * CAPA again. Resolves in the AUTHORIZATION state, ready for login(). Never falls back to
   * plaintext: `starttls` against a server without STLS fails with TlsError before any login.
   */
  static async connect(options: Pop3ConnectOptions): Promise<Pop3Client> {
    const { mailbox } = options;
    assertTransportAllowed(mailbox);
    // A plaintext mailbox needs no TLS options (and must not fail on an unreadable CA file).
    const tlsOptions: ConnectionOptions = mailbox.tls.mode === 'none' ? {} : (options.tlsOptions ?? (await tlsOptionsFor(mailbox)));
    const socket = mailbox.tls.mode === 'implicit'
      ? tlsConnect({ ...tlsOptions, host: mailbox.host, port: mailbox.port })
      : netConnect({ host: mailbox.host, port: mailbox.port });
    const client = new Pop3Client(socket, options);
    try {
      await client.readGreeting();
      client.caps = await client.capa();
      if (mailbox.tls.mode === 'starttls') {
        await client.startTls(tlsOptions);
        // RFC 2595 section 4: capabilities learnt before TLS are discarded and asked again.
        client.caps = await client.capa();
      }
      return client;
    } catch (err) {
      client.destroy();
      throw err;
    }
  }

  /** What the server announced in its last CAPA answer (after STLS, the post-TLS list). */
  get capabilities(): Capabilities {
    return this.caps;
  }

  /**
   * Whether RETR, DELE and `LIST n` go out without waiting for earlier answers: the server listed
   * PIPELINING in CAPA (RFC 2449 section 6.6), after STLS if there was one.
   */
  get pipelining(): boolean {
    return this.caps.has('PIPELINING');
  }

  /** False once the session has ended (QUIT, destroy(), a broken connection or protocol). */
  get usable(): boolean {
    return this.ended === undefined;
  }

  /** True once the bytes on the wire are encrypted (implicit TLS, or after STLS). */
  get secure(): boolean {
    return this.tls;
  }

  /** The TLS session once the bytes on the wire are encrypted; undefined in plaintext. Read-only. */
  tlsInfo(): TlsSessionInfo | undefined {
    const socket = this.socket;
    if (!this.tls || !(socket instanceof TLSSocket)) return undefined;
    return socketTlsInfo(socket);
  }

  /**
   * Authenticates. AUTH PLAIN (RFC 4616 via RFC 5034) when CAPA lists SASL PLAIN, else USER/PASS.
   * A refusal is an AuthError holding the server's text; the password never appears in an error.
   */
  async login(username: string, password: string): Promise<void> {
    if (/[\r\n\0]/.test(username)) {
      throw new AuthError(`the username for ${this.where()} contains a line break or NUL`, { mailbox: this.mailbox.name });
    }
    const sasl = this.caps.get('SASL') ?? [];
    if (sasl.some((m) => m.toUpperCase() === 'PLAIN')) {
      await this.authPlain(username, password);
    } else {
      await this.userPass(username, password);
    }
  }

  /**
   * Authenticates with an OAuth2 access token: AUTH XOAUTH2 (Microsoft 365, Gmail). A token too
   * long for an initial response (RFC 5034 section 4: 255 octets a line) is sent after the "+ "
   * continuation. A refusal may come as a "+ base64(json)" challenge first: that is answered with
   * an empty line, as the mechanism requires, and the -ERR that follows is an AuthError carrying the
   * server's details. The token never appears in an error.
   */
  async loginXoauth2(username: string, accessToken: string): Promise<void> {
    if (hasControlChars(username) || hasControlChars(accessToken)) {
      throw new AuthError(`the username or access token for ${this.where()} contains a control character, which XOAUTH2 cannot carry`, { mailbox: this.mailbox.name });
    }
    const sasl = this.caps.get('SASL') ?? [];
    if (!sasl.some((m) => m.toUpperCase() === 'XOAUTH2')) {
      throw new AuthError(`POP3 server ${this.where()} does not offer AUTH XOAUTH2 (SASL: ${sasl.join(' ') || 'none'}); it cannot log in with an OAuth2 token`, {
        mailbox: this.mailbox.name,
      });
    }
    const response = xoauth2Response(username, accessToken);
    const secrets = [accessToken, response];
    let details: string | undefined;
    const r = await this.exclusive(async () => {
      const withInitial = `AUTH XOAUTH2 ${response}`;
      let answer: Pop3Response;
      if (withInitial.length + 2 <= AUTH_LINE_MAX) {
        answer = await this.send(withInitial, 'AUTH XOAUTH2', SINGLE);
      } else {
        const go = await this.send('AUTH XOAUTH2', 'AUTH XOAUTH2', SINGLE);
        if (go.status !== 'continue') return go;
        answer = await this.send(response, 'AUTH XOAUTH2', SINGLE);
      }
      if (answer.status !== 'continue') return answer;
      details = describeOAuthChallenge(answer.text);
      return this.send('', 'AUTH XOAUTH2', SINGLE);
    });
    this.expectLogin(r.status === 'err' && details !== undefined ? { ...r, text: `${r.text} (${details})` } : r, username, secrets);
  }

  /** STAT: message count and total size of the maildrop (RFC 1939 section 5). */
  async stat(): Promise<MaildropStat> {
    const r = this.expectOk(await this.command('STAT', 'STAT', SINGLE), 'STAT');
    const m = /^(\d+)\s+(\d+)/.exec(r.text);
    if (m === null) throw this.protocolError(`unreadable STAT answer: ${JSON.stringify(r.text)}`);
    return { count: Number(m[1]), size: Number(m[2]) };
  }

  /** UIDL without argument: "n unique-id" per message not marked deleted (RFC 1939 section 7). */
  async uidl(): Promise<UidlEntry[]> {
    return (await this.uidlListing()).entries();
  }

  /**
   * UIDL without argument, kept as served: the SHA-256 of its bytes, and its entries read only
   * when asked for. A maildrop that keeps its mail answers the very same listing poll after poll,
   * and then nobody needs to read it line by line (source.ts).
   */
  async uidlListing(): Promise<UidlListing> {
    const hash = createHash('sha256');
    const pieces: Buffer[] = [];
    const sink = (piece: Buffer) => {
      hash.update(piece);
      // A piece is only valid during the call.
      pieces.push(Buffer.from(piece));
    };
    const r = this.expectOk(await this.command('UIDL', 'UIDL', { shape: 'multi', maxBodyBytes: this.maxListingBytes, sink }), 'UIDL');
    if (r.overLimit) throw this.protocolError(`UIDL answer is larger than ${this.maxListingBytes} bytes`);
    let entries: UidlEntry[] | undefined;
    return {
      sha256: hash.digest('hex'),
      entries: () => {
        if (entries === undefined) {
          const reader = new ListingReader('UIDL', UIDL_LINE, (number, uid): UidlEntry => ({ number, uid }));
          for (const piece of pieces) reader.push(piece);
          const read = reader.finish();
          if (read.failure !== undefined) throw this.protocolError(read.failure);
          entries = read.entries;
        }
        return entries;
      },
    };
  }

  /** LIST without argument: "n size" per message not marked deleted (RFC 1939 section 5). */
  async list(): Promise<ListEntry[]> {
    return this.listing('LIST', LIST_LINE, (number, size) => ({ number, size: Number(size) }));
  }

  /** LIST n: the size of one message (RFC 1939 section 5), a single-line answer "+OK n size". Pipelined. */
  async listOne(messageNumber: number): Promise<number> {
    assertMessageNumber(messageNumber);
    const label = `LIST ${messageNumber}`;
    const r = this.expectOk(await this.queued(label, label, SINGLE), label);
    const size = /^\d+\s+(\d+)/.exec(r.text)?.[1];
    if (size === undefined) throw this.protocolError(`unreadable answer to ${label}: ${r.text}`);
    return Number(size);
  }

  /**
   * RETR: the message's bytes, un-stuffed, exactly as served. A message over `maxBytes` is read to
   * its end and dropped (the session stays usable) and the call rejects with ProtocolError.
   * `sizeHint` (the size LIST gave) lets the bytes go straight into one buffer of that size.
   * Pipelined: the command is written at once when the server allows it.
   */
  async retr(messageNumber: number, maxBytes: number, sizeHint?: number): Promise<Buffer> {
    assertMessageNumber(messageNumber);
    const label = `RETR ${messageNumber}`;
    const expectation: Expectation = sizeHint === undefined
      ? { shape: 'multi', maxBodyBytes: maxBytes }
      : { shape: 'multi', maxBodyBytes: maxBytes, sizeHint };
    const r = this.expectOk(await this.queued(label, label, expectation), label);
    if (r.overLimit) throw this.protocolError(`message ${messageNumber} is larger than ${maxBytes} bytes; it was not kept`);
    if (r.body === undefined) throw this.protocolError(`${label} returned no data`);
    return r.body;
  }

  /**
   * TOP n 0: the header block and the blank line after it (RFC 1939 section 7, optional; every
   * server that announces TOP in CAPA has it). Used for oversize messages with `oversize: headers`.
   */
  async top(messageNumber: number, maxBytes: number): Promise<Buffer> {
    assertMessageNumber(messageNumber);
    const label = `TOP ${messageNumber} 0`;
    const r = this.expectOk(await this.command(label, label, { shape: 'multi', maxBodyBytes: maxBytes }), label);
    if (r.overLimit) throw this.protocolError(`the header block of message ${messageNumber} is larger than ${maxBytes} bytes`);
    if (r.body === undefined) throw this.protocolError(`${label} returned no data`);
    return r.body;
  }

  /**
   * DELE: marks a message deleted; the server removes it only at QUIT (RFC 1939 section 6).
   * Pipelined: the command is written at once when the server allows it.
   */
  async dele(messageNumber: number): Promise<void> {
    assertMessageNumber(messageNumber);
    const label = `DELE ${messageNumber}`;
    this.expectOk(await this.queued(label, label, SINGLE), label);
  }

  async noop(): Promise<void> {
    this.expectOk(await this.command('NOOP', 'NOOP', SINGLE), 'NOOP');
  }

  /**
   * QUIT: enters the UPDATE state, where the server removes the messages marked deleted
   * (RFC 1939 section 6). Resolves only on +OK; a -ERR means some deletions did not happen.
   */
  async quit(): Promise<void> {
    const r = await this.command('QUIT', 'QUIT', SINGLE);
    if (r.status !== 'ok') {
      const err = this.protocolError(`QUIT failed, messages marked deleted may remain: ${r.text}`, r.text);
      this.fail(err);
      throw err;
    }
    this.end(new ConnectionError(`the POP3 session with ${this.where()} is closed`, { mailbox: this.mailbox.name }));
  }

  /**
   * QUIT without waiting for its answer, for a session that marked nothing deleted: the UPDATE
   * state then has nothing to apply that anyone waits for (RFC 1939 section 6), and with a large
   * maildrop the server takes a few ms over it. The line goes out before the socket closes.
   */
  leave(): void {
    if (this.ended !== undefined) return;
    this.socket.write('QUIT\r\n');
    this.end(new ConnectionError(`the POP3 session with ${this.where()} is closed`, { mailbox: this.mailbox.name }));
  }

  /**
   * Drops the connection at once, without QUIT: the server then forgets every DELE of this session
   * (RFC 1939 section 6). Any command in flight rejects. Safe to call at any time.
   */
  destroy(): void {
    this.fail(new ConnectionError(`the POP3 session with ${this.where()} was aborted`, { mailbox: this.mailbox.name }));
  }

  // ---- session setup -------------------------------------------------------------------------

  private async readGreeting(): Promise<void> {
    // Nothing is written: the greeting answers the connection itself. Its timer covers TCP
    // connect, the TLS handshake (implicit mode) and the greeting (timeouts.connectMs).
    const r = await this.exclusive(() => this.send(null, 'greeting', SINGLE, this.mailbox.timeouts.connectMs));
    if (r.status !== 'ok') {
      throw new ConnectionError(`POP3 server ${this.where()} refused the connection: ${r.text}`, {
        mailbox: this.mailbox.name,
        serverResponse: r.text,
      });
    }
  }

  /** CAPA (RFC 2449 section 5). A server without it answers -ERR: then it has no capabilities. */
  private async capa(): Promise<Capabilities> {
    const r = await this.command('CAPA', 'CAPA', { shape: 'multi', maxBodyBytes: CAPA_MAX_BYTES });
    if (r.status !== 'ok' || r.body === undefined) return new Map();
    return parseCapabilities(r.body);
  }

  /** STLS (RFC 2595 section 4): upgrade this very socket to TLS, certificate checked. */
  private async startTls(tlsOptions: ConnectionOptions): Promise<void> {
    if (!this.caps.has('STLS')) {
      throw new TlsError(
        `POP3 server ${this.where()} does not offer STLS; refusing to continue without TLS (use tls: implicit, or check the port)`,
        { mailbox: this.mailbox.name },
      );
    }
    const r = await this.command('STLS', 'STLS', SINGLE);
    if (r.status !== 'ok') {
      throw new TlsError(`POP3 server ${this.where()} refused STLS: ${r.text}`, { mailbox: this.mailbox.name, serverResponse: r.text });
    }
    // Any plaintext that followed the +OK was already refused by the framer as unsolicited data, so
    // nothing injected before the handshake can be taken for a post-TLS answer.
    const plain = this.socket;
    plain.off('data', this.onData);
    this.socket = await this.handshake(plain, tlsOptions);
    this.tls = true;
    this.socket.on('data', this.onData);
    this.socket.on('error', this.onError);
    this.socket.on('close', this.onClose);
  }

  private handshake(plain: Socket, tlsOptions: ConnectionOptions): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      const secure = tlsConnect({ ...tlsOptions, socket: plain });
      const timer = setTimeout(() => {
        secure.destroy();
        reject(new TimeoutError(`TLS handshake with ${this.where()} after STLS timed out`, { mailbox: this.mailbox.name }));
      }, this.mailbox.timeouts.connectMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        secure.destroy();
        reject(classifyNetworkError(err, this.mailbox, 'STLS'));
      };
      secure.once('error', onError);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        secure.off('error', onError);
        if (this.ended !== undefined) {
          secure.destroy();
          reject(this.ended);
        } else {
          resolve(secure);
        }
      });
    });
  }

  // ---- authentication ------------------------------------------------------------------------

  private async authPlain(username: string, password: string): Promise<void> {
    if (password.includes('\0')) {
      throw new AuthError(`the password for ${username} at ${this.where()} contains a NUL byte, which SASL PLAIN cannot carry`, {
        mailbox: this.mailbox.name,
      });
    }
    // RFC 4616 section 2: [authzid] NUL authcid NUL passwd, UTF-8; the authzid is left empty.
    const response = Buffer.from(`\0${username}\0${password}`, 'utf8').toString('base64');
    const secrets = [password, response];
    const withInitial = `AUTH PLAIN ${response}`;
    const r = await this.exclusive(async () => {
      if (withInitial.length + 2 <= AUTH_LINE_MAX) return this.send(withInitial, 'AUTH PLAIN', SINGLE);
      // Too long for an initial response (RFC 5034 section 4): wait for the "+ " continuation.
      const go = await this.send('AUTH PLAIN', 'AUTH PLAIN', SINGLE);
      if (go.status !== 'continue') return go;
      return this.send(response, 'AUTH PLAIN', SINGLE);
    });
    this.expectLogin(r, username, secrets);
  }

  private async userPass(username: string, password: string): Promise<void> {
    if (/[\r\n]/.test(password)) {
      throw new AuthError(
        `the password for ${username} at ${this.where()} contains a line break, which POP3 PASS cannot carry and the server offers no SASL PLAIN`,
        { mailbox: this.mailbox.name },
      );
    }
    const secrets = [password];
    this.expectLogin(await this.command(`USER ${username}`, 'USER', SINGLE), username, secrets);
    this.expectLogin(await this.command(`PASS ${password}`, 'PASS', SINGLE), username, secrets);
  }

  private expectLogin(r: Pop3Response, username: string, secrets: readonly string[]): void {
    if (r.status === 'ok') return;
    if (r.status === 'continue') {
      const err = this.protocolError('unexpected SASL continuation during login');
      this.fail(err);
      throw err;
    }
    throw loginRefusal(r.text, username, this.where(), this.mailbox.name, secrets);
  }

  // ---- command plumbing ----------------------------------------------------------------------

  /**
   * A UIDL or LIST of the whole maildrop, parsed line by line as it arrives: a kept maildrop is
   * listed whole on every poll, and its lines are read while the server is still producing them.
   */
  private async listing<T>(verb: 'UIDL' | 'LIST', line: RegExp, entry: (n: number, arg: string) => T): Promise<T[]> {
    const reader = new ListingReader(verb, line, entry);
    const expectation: Expectation = { shape: 'multi', maxBodyBytes: this.maxListingBytes, sink: reader.push };
    const r = this.expectOk(await this.command(verb, verb, expectation), verb);
    if (r.overLimit) throw this.protocolError(`${verb} answer is larger than ${this.maxListingBytes} bytes`);
    const { entries, failure } = reader.finish();
    if (failure !== undefined) throw this.protocolError(failure);
    return entries;
  }

  private expectOk(r: Pop3Response, label: string): Pop3Response {
    if (r.status === 'ok') return r;
    throw this.protocolError(`POP3 server ${this.where()} refused ${label}: ${r.text}`, r.text);
  }

  /** One command, after every earlier one has completed. */
  private command(line: string, label: string, expectation: Expectation): Promise<Pop3Response> {
    return this.exclusive(() => this.send(line, label, expectation, this.mailbox.timeouts.commandMs));
  }

  /**
   * A command that may be pipelined. With PIPELINING it is written right after the commands before
   * it, without waiting for their answers: the server processes commands in turn and answers in
   * order (RFC 2449 section 6.6), and the framer's queue pairs each answer with its command. Without
   * PIPELINING it is an ordinary command, one at a time.
   */
  private queued(line: string, label: string, expectation: Expectation): Promise<Pop3Response> {
    if (!this.pipelining) return this.command(line, label, expectation);
    let answer: Promise<Pop3Response> | undefined;
    const written = this.exclusive(async () => {
      answer = this.send(line, label, expectation, this.mailbox.timeouts.commandMs);
    });
    return written.then(() => answer as Promise<Pop3Response>);
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.lane.then(work, work);
    this.lane = result.catch(() => undefined);
    return result;
  }

  /** Announces the response, writes the line (none for the greeting) and waits for the answer. */
  private send(line: string | null, label: string, expectation: Expectation, timeoutMs = this.mailbox.timeouts.commandMs): Promise<Pop3Response> {
    const ended = this.ended;
    if (ended !== undefined) return Promise.reject(ended);
    return new Promise((resolve, reject) => {
      this.framer.expect(expectation);
      this.pending.push({ label, timeoutMs, resolve, reject });
      if (line !== null) this.socket.write(Buffer.from(`${line}\r\n`, 'utf8'));
      if (this.pending.length === 1) this.armTimer();
    });
  }

  private attach(socket: Socket): void {
    // Each write is a whole command line: waiting to coalesce them (Nagle) only delays pipelined
    // commands behind unacknowledged ones.
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer): void => {
    let responses: Pop3Response[];
    try {
      responses = this.framer.push(chunk);
    } catch (err) {
      const message = err instanceof FramingError ? err.message : String(err);
      this.fail(this.protocolError(`POP3 server ${this.where()} broke the protocol: ${message}`, undefined, err));
      return;
    }
    for (const response of responses) this.pending.shift()?.resolve(response);
    // The timer measures silence: every chunk restarts it, so a large RETR on a slow link lives.
    this.armTimer();
  };

  private readonly onError = (err: Error): void => {
    this.fail(classifyNetworkError(err, this.mailbox, this.activity()));
  };

  private readonly onClose = (): void => {
    this.fail(classifyNetworkError(new Error('the server closed the connection'), this.mailbox, this.activity()));
  };

  /**
   * (Re)starts the silence timer for the oldest unanswered command. With pipelined commands that is
   * the one whose answer is due first; every chunk restarts it (refresh(), no new timer per chunk).
   */
  private armTimer(): void {
    const head = this.pending[0];
    if (head !== undefined && head === this.timerFor && this.timer !== undefined) {
      this.timer.refresh();
      return;
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerFor = head;
    if (head === undefined) return;
    this.timer = setTimeout(() => {
      this.fail(new TimeoutError(`POP3 server ${this.where()} did not answer ${head.label} within ${head.timeoutMs} ms`, {
        mailbox: this.mailbox.name,
      }));
    }, head.timeoutMs);
  }

  /** Ends the session for good: the socket is destroyed and every waiting command rejects. */
  private fail(err: MailpollError): void {
    if (this.ended !== undefined) return;
    this.ended = err;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.socket.destroy();
    for (const p of this.pending.splice(0)) p.reject(err);
  }

  /**
   * Ends the session after a clean QUIT. Nothing more is read, so the socket is closed once our
   * last bytes are out, whether or not the server closes its side as RFC 1939 section 6 says.
   */
  private end(reason: MailpollError): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.socket.destroySoon();
    for (const p of this.pending.splice(0)) p.reject(reason);
  }

  private activity(): string {
    const head = this.pending[0];
    return head === undefined ? 'POP3 session' : `POP3 ${head.label}`;
  }

  private where(): string {
    return `${this.mailbox.host}:${this.mailbox.port}`;
  }

  private protocolError(message: string, serverResponse?: string, cause?: unknown): ProtocolError {
    return new ProtocolError(message, {
      mailbox: this.mailbox.name,
      ...(serverResponse === undefined ? {} : { serverResponse }),
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

/** CAPA lines: a capability name, then its space-separated arguments (RFC 2449 section 5). */
export function parseCapabilities(body: Buffer): Capabilities {
  const caps = new Map<string, string[]>();
  for (const line of splitLines(body)) {
    const [name, ...args] = line.trim().split(/\s+/);
    if (name !== undefined && name !== '') caps.set(name.toUpperCase(), args);
  }
  return caps;
}

/**
 * One line of a UIDL answer, "n unique-id" (RFC 1939 section 7): the unique-id is 1 to 70
 * characters in 0x21..0x7E. Anything after a further space is ignored. Sticky: each match must
 * start where the previous line ended, so a line that does not fit is noticed, never skipped.
 */
export const UIDL_LINE = /[ \t]*(\d+)[ \t]+([\x21-\x7e]{1,70})(?:[ \t][^\r\n]*)?\r?(?:\n|$)/y;
/** One line of a LIST answer, "n size" (RFC 1939 section 5). */
const LIST_LINE = /[ \t]*(\d+)[ \t]+(\d+)(?:[ \t][^\r\n]*)?\r?(?:\n|$)/y;

/**
 * Longest UIDL or LIST line accepted: a number, a space and at most 70 characters (RFC 1939
 * section 7), with room to spare.
 */
const LISTING_LINE_MAX = 1024;

/**
 * A UIDL or LIST answer read piece by piece, one entry per line; blank lines are skipped, any other
 * line that does not fit `line` fails the whole answer. Pieces may split a line anywhere: the part
 * after the last LF waits for the next piece. One native match per line, no per-line split or trim.
 */
export class ListingReader<T> {
  private readonly entries: T[] = [];
  private carry = '';
  private failure: string | undefined;

  constructor(
    private readonly verb: string,
    private readonly line: RegExp,
    private readonly entry: (n: number, arg: string) => T,
  ) {}

  /** Takes the next piece of the answer. Never throws: a bad line is reported by finish(). */
  readonly push = (piece: Buffer): void => {
    if (this.failure !== undefined) return;
    // Listing bodies are ASCII by RFC 1939; latin1 maps every byte to one char, never failing.
    const text = this.carry + piece.toString('latin1');
    const end = text.lastIndexOf('\n') + 1;
    this.carry = text.slice(end);
    this.read(text, end);
    // No listing line is anywhere near this long; waiting for its end would cost quadratic time.
    if (this.failure === undefined && this.carry.length > LISTING_LINE_MAX) {
      this.failure = `unreadable ${this.verb} line: longer than ${LISTING_LINE_MAX} bytes`;
    }
  };

  /** The entries, or why the answer is unreadable. */
  finish(): { entries: T[]; failure: string | undefined } {
    if (this.failure === undefined && this.carry !== '') this.read(this.carry, this.carry.length);
    this.carry = '';
    return { entries: this.entries, failure: this.failure };
  }

  /** Reads the whole lines of `text` before `end`. */
  private read(text: string, end: number): void {
    const { line } = this;
    for (let pos = 0; pos < end;) {
      line.lastIndex = pos;
      const m = line.exec(text);
      if (m !== null && line.lastIndex <= end) {
        this.entries.push(this.entry(Number(m[1]), m[2] as string));
        pos = line.lastIndex;
        continue;
      }
      const lf = text.indexOf('\n', pos);
      const next = lf === -1 || lf >= end ? end : lf + 1;
      const bad = text.slice(pos, next);
      if (bad.trim() !== '') {
        this.failure = `unreadable ${this.verb} line: ${JSON.stringify(bad.slice(0, 80))}`;
        return;
      }
      pos = next;
    }
  }
}

/** CAPA bodies are ASCII (RFC 2449 section 5); latin1 maps every byte to one char, never failing. */
function splitLines(body: Buffer): string[] {
  return body.toString('latin1').split(/\r?\n/);
}

function assertMessageNumber(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`not a POP3 message number: ${n}`);
}

/**
 * A refused login. RFC 2449 section 8 and RFC 3206 response codes tell a locked or temporarily
 * unavailable maildrop ([IN-USE], [LOGIN-DELAY], [SYS/TEMP]: try again later) from refused
 * credentials ([AUTH], or no code). The server's text is kept, with any echo of a secret removed.
 */
export function loginRefusal(text: string, username: string, where: string, mailbox: string, secrets: readonly string[]): MailpollError {
  const safe = redact(text, secrets);
  const code = /^\[([^\]]+)\]/.exec(safe)?.[1]?.toUpperCase() ?? '';
  const details = { mailbox, serverResponse: safe };
  if (code === 'IN-USE' || code === 'LOGIN-DELAY' || code.startsWith('SYS/TEMP')) {
    return new ConnectionError(`POP3 server ${where} cannot open the maildrop of ${username} now: ${safe}`, details);
  }
  return new AuthError(`POP3 server ${where} refused the login for ${username}: ${safe}`, details);
}

function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s !== '') out = out.split(s).join('[redacted]');
  return out;
}

/** What `mailpoll test` shows of a TLS session: protocol, cipher, the server's certificate. */
export function socketTlsInfo(socket: TLSSocket): TlsSessionInfo {
  const certificate = socket.getPeerCertificate();
  return {
    protocol: socket.getProtocol(),
    cipher: socket.getCipher(),
    certificate: certificate === null || Object.keys(certificate).length === 0 ? undefined : certificate,
    authorized: socket.authorized,
  };
}
