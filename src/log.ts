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
  level: string;
  /** Human-readable output (a terminal); else JSON lines. */
  pretty: boolean;
  destination?: NodeJS.WritableStream;
}

/** pino on stderr (stdout carries the summary), secrets scrubbed from every line. */
export async function createLogger(options: LogOptions): Promise<Logger> {
  const { pino } = await import('pino');
  const target = options.destination ?? process.stderr;
  let sink: NodeJS.WritableStream = target;
  if (options.pretty) {
    const { default: pretty } = await import('pino-pretty');
    sink = pretty({ destination: target as unknown as number, sync: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' });
  }
  const scrubbing = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      sink.write(scrub(chunk.toString()));
      done();
    },
  });
  return pino({ level: options.level, base: undefined }, scrubbing);
}
