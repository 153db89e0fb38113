import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';

export type { Logger };

/**
 * Every secret resolved in this process. Log lines and error messages pass through `scrub`, so a
 * password that a library echoes back in an error still never reaches a log or a terminal.
 */
const secrets = new Set<string>();

export function registerSecret(value: string): void {
  // Very short values would mask ordinary words; they are still never logged by our own code.
  if (value.length >= 4) secrets.add(value);
}

export function scrub(text: string): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join('***');
  return out;
}

export interface LogOptions {
  /** Level of the lines on stderr (or `destination`). */
  level: string;
  /** Human-readable output (a terminal); else JSON lines. */
  pretty: boolean;
  destination?: NodeJS.WritableStream;
  /** Also append JSON lines to this file (its directory is created), at `fileLevel`. */
  file?: string;
  /** Level of the lines in `file`; default info. */
  fileLevel?: string;
}

/** pino on stderr (stdout carries the summary), secrets scrubbed from every line. */
export async function createLogger(options: LogOptions): Promise<Logger> {
  // The default export, not the named one: the bundle (scripts/bundle.js) hands a CommonJS
  // module's exports to `await import()` only as its default.
  const { default: pino } = await import('pino');
  const target = options.destination ?? process.stderr;
  let sink: NodeJS.WritableStream = target;
  if (options.pretty) {
    const { default: pretty } = await import('pino-pretty');
    sink = pretty({ destination: target as unknown as number, sync: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' });
  }
  if (options.file === undefined) return pino({ level: options.level, base: undefined }, scrubbing(sink));
  // Synchronous appends: a cron run ends by returning, and no line may be lost on the way out.
  // Mode 0600 for a new file: log lines name mailboxes and senders.
  ensureDirectory(dirname(options.file));
  const file = pino.destination({ dest: options.file, append: true, sync: true, mode: 0o600 });
  const streams = [
    { level: options.level, stream: scrubbing(sink) },
    { level: options.fileLevel ?? 'info', stream: scrubbing(file as unknown as NodeJS.WritableStream) },
  ].filter((s) => s.level !== 'silent');
  const lowest = streams.reduce<string>((low, s) => ((pino.levels.values[s.level] ?? 0) < (pino.levels.values[low] ?? Infinity) ? s.level : low), 'silent');
  return pino({ level: lowest, base: undefined }, pino.multistream(streams as { level: 'info'; stream: Writable }[]));
}

/**
 * Creates `dir` and its missing parents, one level at a time. Node's recursive mkdir never returns
 * for a missing directory under /proc (the kernel answers ENOENT and Node retries the parent, which
 * exists); a plain mkdir per level fails at once, and `--log-file` reports it (exit 2).
 */
export function ensureDirectory(dir: string): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) ensureDirectory(parent);
  try {
    mkdirSync(dir);
  } catch (err) {
    // Another run made it meanwhile.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function scrubbing(sink: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer | string, _enc, done) {
      sink.write(scrub(chunk.toString()));
      done();
    },
  });
}
