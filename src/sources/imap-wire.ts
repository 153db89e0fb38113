import type { Duplex, Readable, Writable } from 'node:stream';
import type { MailboxConfig } from '../config/types.js';
import { MailpollError, ProtocolError, TimeoutError } from '../errors.js';
import { byeText, DROPPED, fetchItems, ImapFramingError, ResponseFramer, taggedStatus, type FetchValue, type ImapResponse } from './imap-responses.js';
import { classifyNetworkError } from './tls-options.js';

/**
 * The selected state of an IMAP session, spoken directly on the connection that imapflow logged in
 * and opened the folder on, and handed over through its `unbind()`. imapflow parses each response
 * into a generic tree and each message into an object; for a fetch of 1000 messages that was a
 * third of a millisecond per message on the thread that also reads the network and writes SQLite.
 * This reads only what a fetch session needs: literals straight into one buffer each, a handful
 * of data items, tagged status. Commands go one at a time, each after the answer to the one before.
 */

/** A server's tagged NO or BAD: the command was refused, the connection is fine. */
export class ImapRefusal extends ProtocolError {
  constructor(
    message: string,
    mailbox: string,
    /** The response code's atom (RFC 5530), e.g. ALREADYEXISTS, when the server gave one. */
    readonly serverResponseCode: string | undefined,
    /** The server's words. */
    readonly responseText: string,
  ) {
    super(message, { mailbox, serverResponse: responseText });
  }
}

/** One message's section from a FETCH: its bytes, or why there are none. */
export interface FetchedSection {
  uid: number;
  /** The bytes; 'too-large' when the server sent more than the limit; 'missing' for NIL. */
  bytes: Buffer | 'too-large' | 'missing';
}

/** A literal other than the fetched section (an unsolicited response's) is kept up to this size. */
const OTHER_LITERAL_BYTES = 1024 * 1024;
/** Fetched bytes not yet taken by the consumer: the socket is paused above this, resumed below half. */
const QUEUE_HIGH_BYTES = 16 * 1024 * 1024;

interface Running {
  tag: string;
  label: string;
  /** The largest literal kept while this command runs. */
  maxLiteral: number;
  untagged: (response: ImapResponse) => void;
  resolve: () => void;
  reject: (err: MailpollError) => void;
}

export class ImapWire {
  private readonly framer: ResponseFramer;
  private running: Running | undefined;
  /** Serialises commands: each is written after the one before has its tagged answer. */
  private lane: Promise<unknown> = Promise.resolve();
  private tagCount = 0;
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  /** Why the session ended; set once, then every command rejects with it. */
  private ended: MailpollError | undefined;
  private bye: string | undefined;
  /** Whether any response has been read since the connection was handed over. */
  private answered = false;
  private readonly input: Readable;
  private readonly output: Writable;
  /** The socket itself, when `input` and `output` are streams in front of it. */
  private readonly socket: Duplex | undefined;

  /**
   * `connection` as imapflow's unbind() hands it over: with COMPRESS=DEFLATE (RFC 4978) `input` is
   * its inflating stream and `output` the stream its deflating pump reads (and flushes after each
   * write, which unbind() leaves running); otherwise all three are the one socket.
   */
  constructor(
    connection: { input: Readable; output: Writable; socket: Duplex },
    private readonly mailbox: MailboxConfig,
  ) {
    const { input, output, socket } = connection;
    this.input = input;
    this.output = output;
    this.socket = (socket as object) === (input as object) ? undefined : socket;
    this.framer = new ResponseFramer((size) => size <= (this.running?.maxLiteral ?? OTHER_LITERAL_BYTES));
    input.on('data', this.onData);
    input.on('error', this.onError);
    input.on('close', this.onClose);
    if ((output as object) !== (input as object)) output.on('error', this.onError);
    // The data may have been paused when imapflow let go of it.
    input.resume();
  }

  /**
   * One command (everything after the tag), resolved by its tagged OK. A NO or BAD rejects with
   * ImapRefusal; a broken, closed or silent connection with the matching MailpollError.
   */
  command(line: string, label: string, untagged: (response: ImapResponse) => void = () => {}, maxLiteral = OTHER_LITERAL_BYTES): Promise<void> {
    const run = () =>
      new Promise<void>((resolve, reject) => {
        if (this.ended !== undefined) return reject(this.ended);
        const tag = `M${++this.tagCount}`;
        this.running = { tag, label, maxLiteral, untagged, resolve, reject };
        this.output.write(`${tag} ${line}\r\n`);
        this.armTimer();
      });
    const result = this.lane.then(run, run);
    this.lane = result.catch(() => undefined);
    return result;
  }

  /**
   * The size (RFC822.SIZE) of every message in `uids`, by UID, in the order the server sent them.
   * Responses without both (unsolicited flag updates) are passed over.
   */
  async sizes(uids: string): Promise<Map<number, number>> {
    const sizes = new Map<number, number>();
    await this.command(`UID FETCH ${uids} (UID RFC822.SIZE)`, 'FETCH', (response) => {
      const items = fetchItems(response);
      const uid = Number(items?.get('UID'));
      const size = Number(items?.get('RFC822.SIZE'));
      if (Number.isSafeInteger(uid) && uid > 0 && Number.isSafeInteger(size) && size >= 0 && !sizes.has(uid)) sizes.set(uid, size);
    });
    return sizes;
  }

  /**
   * UID FETCH of `section` (`BODY.PEEK[]`: never sets \Seen, RFC 3501 section 6.4.5) for `uids`,
   * yielded as each message's response is complete, before the command is. Responses for UIDs not
   * asked for (unsolicited flag updates) are passed over. A literal over `maxBytes` is skipped as
   * it arrives and reported as 'too-large'. Leaving the loop early is safe: the rest of the
   * answer is read and dropped before the next command goes out.
   */
  async *fetch(uids: string, section: 'BODY.PEEK[]' | 'BODY.PEEK[HEADER]', maxBytes: number): AsyncGenerator<FetchedSection> {
    const key = section.replace('.PEEK', '');
    const queue: FetchedSection[] = [];
    let queuedBytes = 0;
    let finished = false;
    let failure: MailpollError | undefined;
    let wake: (() => void) | undefined;
    let abandoned = false;
    const untagged = (response: ImapResponse) => {
      const items = fetchItems(response);
      if (items === undefined || abandoned || !items.has(key)) return;
      const uid = Number(items.get('UID'));
      if (!Number.isSafeInteger(uid) || uid <= 0) throw new ImapFramingError('a FETCH response without its UID');
      const bytes = sectionBytes(items.get(key));
      queue.push({ uid, bytes });
      if (Buffer.isBuffer(bytes)) queuedBytes += bytes.length;
      // The consumer stores what it takes; while it is behind, TCP holds the server back.
      if (queuedBytes > QUEUE_HIGH_BYTES) this.pause();
      wake?.();
    };
    const done = this.command(`UID FETCH ${uids} (UID ${section})`, 'FETCH', untagged, maxBytes).then(
      () => {
        finished = true;
        wake?.();
      },
      (err: MailpollError) => {
        failure = err;
        finished = true;
        wake?.();
      },
    );
    try {
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          if (Buffer.isBuffer(next.bytes)) queuedBytes -= next.bytes.length;
          if (queuedBytes < QUEUE_HIGH_BYTES / 2) this.resume();
          yield next;
          continue;
        }
        if (finished) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      await done;
      if (failure !== undefined) throw failure;
    } finally {
      abandoned = true;
      queue.length = 0;
      this.resume();
    }
  }

  /** LOGOUT, waiting for its answer (RFC 3501 section 6.1.3), then the connection is closed. */
  async logout(): Promise<void> {
    try {
      await this.command('LOGOUT', 'LOGOUT');
    } finally {
      this.end();
    }
  }

  /** Drops the connection without another command. Safe at any time. */
  destroy(): void {
    this.finish(classifyNetworkError(new Error('the session was aborted'), this.mailbox, 'IMAP session'));
    this.drop();
  }

  private readonly onData = (chunk: Buffer): void => {
    let responses: ImapResponse[];
    try {
      responses = this.framer.push(chunk);
      for (const response of responses) this.dispatch(response);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.fail(new ProtocolError(`IMAP server ${this.where()} broke the protocol during ${this.activity()}: ${message}`, { mailbox: this.mailbox.name, cause: err }));
      return;
    }
    // The timer measures silence: each chunk restarts it, so a large message on a slow link lives.
    this.armTimer();
  };

  private dispatch(response: ImapResponse): void {
    const running = this.running;
    const first = !this.answered;
    this.answered = true;
    if (response.text.startsWith('* ')) {
      const bye = byeText(response.text);
      if (bye !== undefined) this.bye = bye;
      else running?.untagged(response);
      return;
    }
    if (response.text.startsWith('+')) {
      throw new ImapFramingError('a continuation request, but no command here sends a literal');
    }
    const status = taggedStatus(response.text);
    // imapflow may have read the start of an unsolicited response (`* 4 EXI`) before it let go of the
    // connection: its rest is the first line here, and belongs to nothing.
    if (status === undefined && first) return;
    if (status === undefined || running === undefined || status.tag !== running.tag) {
      throw new ImapFramingError(`an unexpected response: ${response.text.slice(0, 80)}`);
    }
    this.running = undefined;
    this.armTimer();
    if (status.status === 'OK') running.resolve();
    else {
      const text = status.text || status.status;
      running.reject(new ImapRefusal(`IMAP server ${this.where()} refused ${running.label}: ${text}`, this.mailbox.name, status.code, text));
    }
  }

  private readonly onError = (err: Error): void => {
    this.fail(classifyNetworkError(err, this.mailbox, this.activity()));
  };

  private readonly onClose = (): void => {
    const why = this.bye === undefined ? 'the server closed the connection' : `the server closed the connection: ${this.bye}`;
    this.fail(classifyNetworkError(new Error(why), this.mailbox, this.activity()));
  };

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.input.pause();
    // Silence is ours while paused, not the server's.
    this.armTimer();
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.input.resume();
    this.armTimer();
  }

  /** Runs the silence timer while a command waits for the server; refresh() keeps it cheap per chunk. */
  private armTimer(): void {
    const running = this.running;
    if (running === undefined || this.paused || this.ended !== undefined) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    if (this.timer !== undefined) {
      this.timer.refresh();
      return;
    }
    const ms = this.mailbox.timeouts.commandMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fail(new TimeoutError(`IMAP server ${this.where()} did not answer ${this.activity()} within ${ms} ms`, { mailbox: this.mailbox.name }));
    }, ms);
  }

  /** Ends the session for good: the connection is dropped and the waiting command rejects. */
  private fail(err: MailpollError): void {
    if (this.ended !== undefined) return;
    this.finish(err);
    this.drop();
  }

  private drop(): void {
    this.input.destroy();
    this.output.destroy();
    this.socket?.destroy();
  }

  /** After LOGOUT's answer: nothing more is read; the connection closes once our bytes are out. */
  private end(): void {
    if (this.ended !== undefined) return;
    this.finish(classifyNetworkError(new Error('the session has ended'), this.mailbox, 'IMAP session'));
    // LOGOUT was answered, so every byte of ours is out, deflated or not.
    (this.socket ?? this.output).end();
    this.input.destroy();
  }

  private finish(reason: MailpollError): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    this.input.off('data', this.onData);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const running = this.running;
    this.running = undefined;
    running?.reject(reason);
  }

  private activity(): string {
    return this.running === undefined ? 'IMAP session' : `IMAP ${this.running.label}`;
  }

  private where(): string {
    return `${this.mailbox.host}:${this.mailbox.port}`;
  }
}

/** A fetched section's value: a literal (or quoted string, RFC 3501 allows either), or NIL. */
function sectionBytes(value: FetchValue | undefined): FetchedSection['bytes'] {
  if (Buffer.isBuffer(value)) return value;
  if (value === DROPPED) return 'too-large';
  // The grammar decoded the line as UTF-8; encoding the same way gives back the bytes sent.
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return 'missing';
}
