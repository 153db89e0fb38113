import { ConfigError } from '../errors.js';
import { createLogger, type Logger, type LogOptions } from '../log.js';

export interface LogFlags {
  /** `--log-level`, when given. */
  logLevel?: string;
  /** `--log-file`, when given. */
  logFile?: string;
}

/**
 * Where logs go and at which level. `--log-level` sets the level of the main log: the file when
 * `--log-file` is given, else stderr.
 *
 * - No `--log-file`: stderr gets pretty lines at `info` on a terminal; when stderr is not a
 *   terminal (cron, a pipe) JSON lines at `warn`, so a successful cron run mails nothing while a
 *   warning still reaches someone. `service` (the daemon, whose stderr is a journal) keeps `info`.
 * - `--log-file`: the file gets JSON lines at `info`; stderr only what needs attention: `warn` on
 *   a terminal, `error` otherwise. Warnings stay in the file, so a deliberate `tls: none` does not
 *   send cron mail every minute, and a failure still does.
 */
export function logSetup(flags: LogFlags, terminal: boolean, service = false): LogOptions {
  if (flags.logFile !== undefined) {
    return { level: terminal ? 'warn' : 'error', pretty: terminal, file: flags.logFile, fileLevel: flags.logLevel ?? 'info' };
  }
  return { level: flags.logLevel ?? (terminal || service ? 'info' : 'warn'), pretty: terminal };
}

/** The logger of a command; a `--log-file` that cannot be opened is a usage error (exit 2). */
export async function openLogger(flags: LogFlags, terminal: boolean, options: { service?: boolean; destination?: NodeJS.WritableStream } = {}): Promise<Logger> {
  try {
    return await createLogger({ ...logSetup(flags, terminal, options.service), destination: options.destination });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (flags.logFile === undefined || code === undefined) throw err;
    throw new ConfigError([{ file: flags.logFile, line: undefined, column: undefined, field: '--log-file', message: `cannot append to it: ${code}` }], { cause: err });
  }
}
