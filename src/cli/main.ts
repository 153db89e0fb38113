import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, MailpollError } from '../errors.js';
import { scrub } from '../log.js';
import { EXIT } from './exit-codes.js';
import { registerScheduleCommand } from './schedule-command.js';
import { registerTestCommand } from './test-command.js';
import { registerTicketCommands } from './ticket-commands.js';

/**
 * The command line. Each command's module is imported only when that command runs, so
 * `mailpoll --help` and a cron tick load nothing they do not use.
 */
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('mailpoll')
  .description('Turns mailboxes into tickets: polls IMAP and POP3 over TLS and stores every message exactly once in SQLite.')
  .version(pkg.version, '-V, --version')
  .option('-c, --config <file>', 'config file (default: $MAILPOLL_CONFIG, else ./mailpoll.yaml)')
  // No commander default: the default depends on where logs go (src/cli/log-setup.ts).
  .addOption(new Option('--log-level <level>', 'level of the log: the --log-file if given, else stderr (default: info on a terminal and in a log file, warn on a non-terminal stderr)').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']))
  .option('--log-file <path>', 'append JSON log lines to this file (directories created); stderr then shows only warnings on a terminal, only errors otherwise')
  .showHelpAfterError()
  .exitOverride();

program
  .command('fetch')
  .description('poll the mailboxes and store new mail as tickets')
  .option('--now', 'poll the selected mailboxes now, due or not')
  .option('-m, --mailbox <name>', 'only this mailbox (repeatable)', (value: string, prev: string[]) => [...prev, value], [] as string[])
  .option('--concurrency <n>', 'mailboxes polled at once', (v) => Number.parseInt(v, 10), 4)
  .option('--json', 'print the summary as JSON')
  .option('-v, --verbose', 'print the summary table even when stdout is not a terminal (by default cron gets nothing on success, one line per failing mailbox otherwise)')
  .option('--metrics-file <path>', 'after the run, write Prometheus metrics to this file atomically (for node_exporter\'s textfile collector; name it *.prom)')
  .action(async (opts: { mailbox: string[]; concurrency: number; json?: boolean; now?: boolean; verbose?: boolean; metricsFile?: string }) => {
    const { fetchCommand } = await import('./fetch.js');
    process.exitCode = await fetchCommand({ ...program.opts<GlobalOptions>(), ...opts, json: opts.json === true, now: opts.now === true, verbose: opts.verbose === true });
  });

program
  .command('check')
  .description('validate the config and every password source (env var set, file readable, command runs) without connecting anywhere; print the config with secrets masked. Exit 0 all good, 1 a secret cannot be resolved, 2 config error')
  .option('--json', 'print the result as JSON')
  .action(async (opts: { json?: boolean }) => {
    const { checkCommand } = await import('./check.js');
    process.exitCode = await checkCommand({ ...program.opts<GlobalOptions>(), json: opts.json === true });
  });

program
  .command('init')
  .description('write a commented starter config (mode 0600) and the password file it names; never overwrites the config without --force')
  .argument('[path]', 'where to write it (default: --config, else $MAILPOLL_CONFIG, else ./mailpoll.yaml)')
  .option('--force', 'overwrite an existing config file (an existing password file is always kept)')
  .action(async (path: string | undefined, opts: { force?: boolean }) => {
    const { initCommand } = await import('./init.js');
    process.exitCode = await initCommand({ ...program.opts<GlobalOptions>(), path, force: opts.force === true });
  });

program
  .command('status')
  .description('show each mailbox: last attempt and success, next due time, failures, quarantined messages')
  .option('--json', 'print as JSON')
  .action(async (opts: { json?: boolean }) => {
    const { statusCommand } = await import('./status.js');
    process.exitCode = await statusCommand({ ...program.opts<GlobalOptions>(), json: opts.json === true });
  });

program
  .command('daemon')
  .description('run until stopped: poll each mailbox on its own schedule, IMAP IDLE where idle: true')
  .option('--concurrency <n>', 'mailboxes polled at once', (v) => Number.parseInt(v, 10), 4)
  .option('--listen <address:port>', 'serve POST /fetch (API key: http.apiKey), GET /health and GET /metrics here, e.g. 127.0.0.1:8025; beyond loopback only with the address written out (0.0.0.0:8025)')
  .action(async (opts: { concurrency: number; listen?: string }) => {
    const { daemonCommand } = await import('./daemon.js');
    process.exitCode = await daemonCommand({ ...program.opts<GlobalOptions>(), ...opts });
  });

registerTicketCommands(program, () => program.opts<GlobalOptions>());
registerTestCommand(program, () => program.opts<GlobalOptions>());
registerScheduleCommand(program, () => program.opts<GlobalOptions>());

export interface GlobalOptions {
  config?: string;
  /** Unset unless given: the default depends on the destination (src/cli/log-setup.ts). */
  logLevel?: string;
  logFile?: string;
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = reportError(err);
}

/** The one place that turns an error into text and an exit code. */
function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // --help and --version end through here too, successfully.
    return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`mailpoll: configuration error\n${err.message}\n`);
    return EXIT.USAGE;
  }
  if (err instanceof MailpollError) {
    process.stderr.write(`mailpoll: ${scrub(err.message)}\n`);
    return EXIT.FAILED;
  }
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`mailpoll: unexpected error — this is a bug, please report it:\n${scrub(detail)}\n`);
  return EXIT.FAILED;
}
