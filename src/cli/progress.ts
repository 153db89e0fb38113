import { Writable } from 'node:stream';
import type { FetchProgress } from '../fetch/summary.js';

/** "1.2 MB": binary multiples, like the config's sizes. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
}

/** "support: 12 of 50 messages, 1.2 MB of 4.0 MB" */
export function formatMailboxProgress(p: FetchProgress): string {
  return `${p.mailbox}: ${p.done} of ${p.total} messages, ${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)}`;
}

/**
 * The one status line: every mailbox still fetching, in the order they started, cut to the
 * terminal's width (a wrapped line could no longer be rewritten with a carriage return).
 */
export function formatProgressLine(active: readonly FetchProgress[], columns?: number): string {
  const line = active.map(formatMailboxProgress).join('  |  ');
  const width = columns !== undefined && columns > 1 ? columns - 1 : undefined;
  return width !== undefined && line.length > width ? `${line.slice(0, Math.max(0, width - 1))}…` : line;
}

/** The part of a terminal stream the progress line needs (process.stderr on a TTY). */
export interface ProgressOutput {
  write(text: string): unknown;
  columns?: number;
}

/**
 * A progress line on a terminal, rewritten in place with a carriage return, at most every
 * `intervalMs` (a fast loop must not spend its time drawing). Anything else written to the same
 * terminal (log lines) goes through `interrupt`, so it never lands in the middle of the line.
 * Plain carriage returns and spaces, no ANSI: works on any terminal, Windows' included.
 */
export class ProgressLine {
  private readonly mailboxes = new Map<string, FetchProgress>();
  private shown = '';
  private lastDraw = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: ProgressOutput,
    private readonly intervalMs = 100,
    private readonly now: () => number = Date.now,
  ) {}

  update(progress: FetchProgress): void {
    this.mailboxes.set(progress.mailbox, { ...progress });
    const wait = this.lastDraw + this.intervalMs - this.now();
    if (wait <= 0) {
      this.draw();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.draw();
      }, wait);
      this.timer.unref();
    }
  }

  /** Writes something else to the terminal: the line is erased first and drawn again after. */
  interrupt(write: () => void): void {
    const had = this.shown !== '';
    this.erase();
    write();
    if (had) this.draw();
  }

  /** Erases the line for good; call before printing the summary. */
  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.erase();
    this.mailboxes.clear();
  }

  private draw(): void {
    this.lastDraw = this.now();
    // Mailboxes whose messages are all done (or that had none) leave the line.
    const active = [...this.mailboxes.values()].filter((p) => p.done < p.total);
    const line = formatProgressLine(active, this.out.columns);
    if (line === this.shown) return;
    // Pad over the rest of a longer previous line.
    this.out.write(`\r${line}${' '.repeat(Math.max(0, this.shown.length - line.length))}${line === '' ? '\r' : ''}`);
    this.shown = line;
  }

  private erase(): void {
    if (this.shown === '') return;
    this.out.write(`\r${' '.repeat(this.shown.length)}\r`);
    this.shown = '';
  }
}

/** A stream for the logger: each write erases the progress line, writes, and draws it again. */
export function beside(progress: ProgressLine, target: ProgressOutput): NodeJS.WritableStream {
  return new Writable({
    write(chunk: Buffer | string, _enc, done) {
      progress.interrupt(() => target.write(chunk.toString()));
      done();
    },
  });
}
