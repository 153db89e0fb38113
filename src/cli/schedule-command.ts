import { existsSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { EXIT } from './exit-codes.js';
import type { GlobalOptions } from './main.js';

/**
 * `mailpoll schedule [--cron|--windows|--systemd]`: prints what runs `mailpoll fetch` every minute
 * for this installation and config file. Text generation and quoting are pure functions below.
 */
export function registerScheduleCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('schedule')
    .description('print a crontab line, a Windows schtasks command and a systemd timer that run `mailpoll fetch` every minute')
    .option('--cron', 'only the crontab line')
    .option('--windows', 'only the Windows Task Scheduler command')
    .option('--systemd', 'only the systemd service and timer units')
    .action(async (opts: ScheduleSelection) => {
      process.exitCode = await scheduleCommand({ ...globals(), ...opts });
    });
}

export interface ScheduleSelection {
  cron?: boolean;
  windows?: boolean;
  systemd?: boolean;
}

export async function scheduleCommand(opts: GlobalOptions & ScheduleSelection): Promise<number> {
  const { configPath } = await import('../config/load.js');
  const config = configPath(opts.config);
  if (!existsSync(config)) {
    process.stderr.write(`mailpoll: note: the config file ${config} does not exist yet; the lines below use that path anyway\n`);
  }
  const texts = scheduleTexts({
    node: process.execPath,
    // This module is dist/cli/schedule-command.js: the launcher of this installation is two levels up.
    bin: fileURLToPath(new URL('../../bin/mailpoll.js', import.meta.url)),
    config,
    platform: process.platform,
  });
  process.stdout.write(formatSchedule(texts, opts));
  return EXIT.OK;
}

// ---- pure text generation ----------------------------------------------------------------------

export interface SchedulePaths {
  /** Absolute path of the node executable. */
  node: string;
  /** Absolute path of bin/mailpoll.js. */
  bin: string;
  /** Absolute path of the config file. */
  config: string;
  /** The platform this runs on (default: this process's): texts for another one get a note. */
  platform?: NodeJS.Platform;
}

export interface ScheduleTexts {
  cron: string;
  windows: string;
  systemd: { service: string; timer: string };
}

/** The schtasks limit on the length of the /TR value. */
const SCHTASKS_TR_MAX = 261;

/** Every text ends with a newline; comments say where it goes and what to check. */
export function scheduleTexts(paths: SchedulePaths): ScheduleTexts {
  const platform = paths.platform ?? process.platform;
  for (const [what, value] of Object.entries({ node: paths.node, bin: paths.bin, config: paths.config })) {
    // No crontab line, unit file or schtasks command can carry a line break.
    if (/[\r\n\0]/.test(value)) {
      throw new ConfigError([{ file: value, line: undefined, column: undefined, field: what, message: 'the path contains a line break or NUL; no scheduler can run it' }]);
    }
  }
  const fetchArgs = ['fetch', '--config', paths.config];
  const argv = [paths.node, paths.bin, ...fetchArgs];
  const elsewhere = (native: boolean, mark: string) =>
    native ? [] : [`${mark} These paths are this ${platform} machine's: run \`mailpoll schedule\` on the machine that will run it.`];

  const log = posix.join(posix.dirname(paths.config), 'mailpoll.log');
  const cron = [
    ...elsewhere(platform !== 'win32', '#'),
    '# mailpoll: every minute; each mailbox is polled when its own `every` is due. Overlapping runs are',
    '# safe: two runs never poll the same mailbox at once. Output and logs are appended to a file next to',
    '# the config: the crontab\'s user must be able to write there (or change the path).',
    `* * * * * ${cronEscape(argv.map(shellQuote).join(' '))} >>${cronEscape(shellQuote(log))} 2>&1`,
  ].join('\n');

  const task = argv.map(windowsQuote).join(' ');
  const windows = [
    ...elsewhere(platform === 'win32', 'rem'),
    'rem mailpoll: every minute. Run this in cmd.exe as the account mailpoll should run as; add',
    'rem /RU SYSTEM (or /RU DOMAIN\\user /RP) to run it while nobody is logged on. Task Scheduler keeps no',
    'rem output: its Last Run Result is the exit code (0 ok, 1 a mailbox failed, 2 configuration error).',
    ...(task.length > SCHTASKS_TR_MAX
      ? [`rem WARNING: the /TR value is ${task.length} characters; schtasks accepts at most ${SCHTASKS_TR_MAX}. Use shorter paths.`]
      : []),
    `schtasks /Create /SC MINUTE /MO 1 /TN "mailpoll fetch" /TR ${windowsQuote(task)} /F`,
  ].join('\n');

  const service = [
    '# /etc/systemd/system/mailpoll.service: one `mailpoll fetch` run; mailpoll.timer starts it every minute.',
    ...elsewhere(platform === 'linux', '#'),
    '[Unit]',
    'Description=mailpoll: poll mailboxes and store new mail as tickets',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=oneshot',
    '# Better not root: a dedicated user that can read the config and write the database, e.g.',
    '#   useradd --system --home-dir /var/lib/mailpoll --shell /usr/sbin/nologin mailpoll',
    '#User=mailpoll',
    '#Group=mailpoll',
    `ExecStart=${argv.map(systemdQuote).join(' ')}`,
    '# Output and logs go to the journal: journalctl -u mailpoll.service',
  ].join('\n');

  const timer = [
    '# /etc/systemd/system/mailpoll.timer, then: systemctl daemon-reload && systemctl enable --now mailpoll.timer',
    '[Unit]',
    'Description=Run mailpoll fetch every minute',
    '',
    '[Timer]',
    'OnCalendar=minutely',
    // A run missed while the machine was off is made up once at boot.
    'Persistent=true',
    '',
    '[Install]',
    'WantedBy=timers.target',
  ].join('\n');

  return { cron: `${cron}\n`, windows: `${windows}\n`, systemd: { service: `${service}\n`, timer: `${timer}\n` } };
}

/**
 * What `mailpoll schedule` prints: the selected texts, all three when none is selected. With more
 * than one, each gets a heading; alone, a text is printed as it is, ready to be redirected.
 */
export function formatSchedule(texts: ScheduleTexts, selection: ScheduleSelection): string {
  const none = !selection.cron && !selection.windows && !selection.systemd;
  const parts: { heading: string; body: string }[] = [];
  if (none || selection.cron) parts.push({ heading: 'crontab (Linux, macOS, BSD): add this line with `crontab -e`', body: texts.cron });
  if (none || selection.windows) parts.push({ heading: 'Windows Task Scheduler: run this in cmd.exe', body: texts.windows });
  if (none || selection.systemd) {
    parts.push({ heading: 'systemd: two unit files, mailpoll.service and mailpoll.timer', body: `${texts.systemd.service}\n${texts.systemd.timer}` });
  }
  if (parts.length === 1) return parts[0]?.body ?? '';
  return parts.map((p) => `### ${p.heading}\n\n${p.body}`).join('\n');
}

/** POSIX sh: bare when only safe characters, else single quotes ('\'' for a quote inside). */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** cron turns an unescaped % into a line break (crontab(5)), quotes or not: `\%` is a literal %. */
export function cronEscape(command: string): string {
  return command.replace(/%/g, '\\%');
}

/**
 * Windows: one argument as the C runtime's command-line parser (CommandLineToArgvW) reads it back.
 * Quoted only when it holds a space, tab or quote; inside quotes, a quote is \" and the backslashes
 * right before a quote (or the closing quote) are doubled.
 */
export function windowsQuote(arg: string): string {
  if (arg !== '' && !/[\s"]/.test(arg)) return arg;
  let out = '"';
  let backslashes = 0;
  for (const ch of arg) {
    if (ch === '\\') {
      backslashes += 1;
      continue;
    }
    out += ch === '"' ? `${'\\'.repeat(backslashes * 2 + 1)}"` : `${'\\'.repeat(backslashes)}${ch}`;
    backslashes = 0;
  }
  return `${out}${'\\'.repeat(backslashes * 2)}"`;
}

/**
 * systemd ExecStart= (systemd.service(5) "Command lines"): bare when only safe characters, else
 * double quotes with C escapes for \ and ". % starts a specifier and $ a variable, quoted or not:
 * they are written %% and $$.
 */
export function systemdQuote(arg: string): string {
  const quoted = /^[A-Za-z0-9_@+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  return quoted.replace(/%/g, '%%').replace(/\$/g, () => '$$');
}
