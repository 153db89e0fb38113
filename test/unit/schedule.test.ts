import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  cronEscape, formatSchedule, scheduleTexts, shellQuote, systemdQuote, windowsQuote,
} from '../../src/cli/schedule-command.js';

/** What /bin/sh makes of a command line: one argument per line. */
function shArgs(line: string): string[] {
  const out = execFileSync('/bin/sh', ['-c', `printf '%s\\n' ${line}`], { encoding: 'utf8' });
  return out.split('\n').slice(0, -1);
}

/** crontab(5): cron turns `\%` into `%` (an unescaped % would end the command) before the shell sees it. */
function cronUnescape(command: string): string {
  expect(command).not.toMatch(/(^|[^\\])%/);
  return command.replace(/\\%/g, '%');
}

/**
 * How the Microsoft C runtime (and libuv, for node) splits a command line, as documented for
 * CommandLineToArgvW: 2n backslashes + quote -> n backslashes, toggle quoting; 2n+1 backslashes +
 * quote -> n backslashes and a literal quote; backslashes not before a quote are literal.
 */
function windowsArgs(line: string): string[] {
  const args: string[] = [];
  let current = '';
  let inQuotes = false;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (ch === '\\') {
      let n = 0;
      while (line[i] === '\\') { n++; i++; }
      if (line[i] === '"') {
        current += '\\'.repeat(Math.floor(n / 2));
        if (n % 2 === 1) current += '"'; else inQuotes = !inQuotes;
      } else {
        current += '\\'.repeat(n);
        i--;
      }
      started = true;
    } else if (ch === '"') {
      inQuotes = !inQuotes;
      started = true;
    } else if ((ch === ' ' || ch === '\t') && !inQuotes) {
      if (started) args.push(current);
      current = '';
      started = false;
    } else {
      current += ch;
      started = true;
    }
  }
  if (started) args.push(current);
  return args;
}

const AWKWARD_POSIX = ['/usr/bin/node', '/opt/mail poll/bin/mailpoll.js', "/srv/it's/x.yaml", '/a/"b"/c', '$HOME/`x`/*', 'tab\there', '50%', ''];
const AWKWARD_WINDOWS = [
  'C:\\mailpoll\\bin\\mailpoll.js',
  'C:\\Program Files\\nodejs\\node.exe',
  'C:\\dir with space\\',
  'a"b',
  'a\\"b',
  'a\\\\ b',
  '',
];

describe('shellQuote (POSIX sh)', () => {
  it('leaves plain paths bare and single-quotes the rest, with \'\\\'\' for a quote', () => {
    expect(shellQuote('/usr/bin/node')).toBe('/usr/bin/node');
    expect(shellQuote('/opt/mail poll/bin/mailpoll.js')).toBe("'/opt/mail poll/bin/mailpoll.js'");
    expect(shellQuote("/srv/it's/x.yaml")).toBe("'/srv/it'\\''s/x.yaml'");
    expect(shellQuote('/a/"b"/c')).toBe(`'/a/"b"/c'`);
    expect(shellQuote('$HOME/x')).toBe("'$HOME/x'");
    expect(shellQuote('')).toBe("''");
  });

  it('round-trips through /bin/sh unchanged', () => {
    for (const arg of AWKWARD_POSIX) expect(shArgs(shellQuote(arg))).toEqual([arg]);
  });
});

describe('windowsQuote (C runtime command-line rules)', () => {
  it('quotes only with a space, tab or quote; escapes quotes as \\" and doubles backslashes before a quote', () => {
    expect(windowsQuote('C:\\mailpoll\\bin\\mailpoll.js')).toBe('C:\\mailpoll\\bin\\mailpoll.js');
    expect(windowsQuote('C:\\Program Files\\nodejs\\node.exe')).toBe('"C:\\Program Files\\nodejs\\node.exe"');
    expect(windowsQuote('C:\\dir with space\\')).toBe('"C:\\dir with space\\\\"');
    expect(windowsQuote('a"b')).toBe('"a\\"b"');
    expect(windowsQuote('a\\"b')).toBe('"a\\\\\\"b"');
    expect(windowsQuote('')).toBe('""');
  });

  it('round-trips through the C runtime parser, also when nested (the /TR value)', () => {
    for (const arg of AWKWARD_WINDOWS) expect(windowsArgs(windowsQuote(arg))).toEqual([arg]);
    const inner = AWKWARD_WINDOWS.map(windowsQuote).join(' ');
    const [tr] = windowsArgs(windowsQuote(inner));
    expect(tr).toBe(inner);
    expect(windowsArgs(tr as string)).toEqual(AWKWARD_WINDOWS);
  });
});

describe('systemdQuote (ExecStart=)', () => {
  it('double-quotes with C escapes, and doubles % and $ even inside quotes', () => {
    expect(systemdQuote('/usr/bin/node')).toBe('/usr/bin/node');
    expect(systemdQuote('/opt/mail poll/bin/mailpoll.js')).toBe('"/opt/mail poll/bin/mailpoll.js"');
    expect(systemdQuote('/srv/50% $x "q" back\\slash/m.yaml')).toBe('"/srv/50%% $$x \\"q\\" back\\\\slash/m.yaml"');
    expect(systemdQuote('/srv/100%')).toBe('"/srv/100%%"');
    expect(systemdQuote("/srv/it's")).toBe(`"/srv/it's"`);
  });
});

describe('cronEscape', () => {
  it('escapes every % so cron does not cut the command there', () => {
    expect(cronEscape("'/srv/50% off/x' 100%")).toBe("'/srv/50\\% off/x' 100\\%");
  });
});

describe('scheduleTexts', () => {
  const plain = { node: '/usr/bin/node', bin: '/opt/mailpoll/bin/mailpoll.js', config: '/etc/mailpoll/mailpoll.yaml', platform: 'linux' as const };

  it('prints the exact crontab text for a plain installation, logging next to the config', () => {
    expect(scheduleTexts(plain).cron).toBe([
      '# mailpoll: every minute; each mailbox is polled when its own `every` is due. Overlapping runs are',
      '# safe: two runs never poll the same mailbox at once. Output and logs are appended to a file next to',
      "# the config: the crontab's user must be able to write there (or change the path).",
      '* * * * * /usr/bin/node /opt/mailpoll/bin/mailpoll.js fetch --config /etc/mailpoll/mailpoll.yaml >>/etc/mailpoll/mailpoll.log 2>&1',
      '',
    ].join('\n'));
  });

  it('quotes paths with spaces, quotes and % in the crontab line, and sh gets the paths back', () => {
    const paths = { node: '/usr/bin/node', bin: '/opt/mail poll/bin/mailpoll.js', config: "/srv/50% it's/mailpoll.yaml", platform: 'linux' as const };
    const line = scheduleTexts(paths).cron.split('\n').find((l) => l.startsWith('* * * * * ')) as string;
    expect(line).toBe(
      "* * * * * /usr/bin/node '/opt/mail poll/bin/mailpoll.js' fetch --config '/srv/50\\% it'\\''s/mailpoll.yaml'"
      + " >>'/srv/50\\% it'\\''s/mailpoll.log' 2>&1",
    );
    const command = cronUnescape(line.slice('* * * * * '.length).replace(/ >>.*$/, ''));
    expect(shArgs(command)).toEqual([paths.node, paths.bin, 'fetch', '--config', paths.config]);
  });

  it('prints the exact schtasks command: /TR is one argument with the inner quotes as \\"', () => {
    const windows = scheduleTexts({
      node: 'C:\\Program Files\\nodejs\\node.exe',
      bin: 'C:\\Program Files\\mailpoll\\bin\\mailpoll.js',
      config: 'C:\\ProgramData\\mailpoll\\mailpoll.yaml',
      platform: 'win32',
    }).windows;
    expect(windows).toBe([
      'rem mailpoll: every minute. Run this in cmd.exe as the account mailpoll should run as; add',
      'rem /RU SYSTEM (or /RU DOMAIN\\user /RP) to run it while nobody is logged on. Task Scheduler keeps no',
      'rem output: its Last Run Result is the exit code (0 ok, 1 a mailbox failed, 2 configuration error).',
      'schtasks /Create /SC MINUTE /MO 1 /TN "mailpoll fetch" /TR "\\"C:\\Program Files\\nodejs\\node.exe\\"'
        + ' \\"C:\\Program Files\\mailpoll\\bin\\mailpoll.js\\" fetch --config C:\\ProgramData\\mailpoll\\mailpoll.yaml" /F',
      '',
    ].join('\n'));
    const line = windows.split('\n').find((l) => l.startsWith('schtasks')) as string;
    const args = windowsArgs(line);
    expect(args.slice(0, 9)).toEqual(['schtasks', '/Create', '/SC', 'MINUTE', '/MO', '1', '/TN', 'mailpoll fetch', '/TR']);
    expect(args[10]).toBe('/F');
    expect(windowsArgs(args[9] as string)).toEqual([
      'C:\\Program Files\\nodejs\\node.exe', 'C:\\Program Files\\mailpoll\\bin\\mailpoll.js', 'fetch', '--config', 'C:\\ProgramData\\mailpoll\\mailpoll.yaml',
    ]);
  });

  it('warns when the /TR value is longer than schtasks accepts (261 characters)', () => {
    const deep = `C:\\${'very long folder name\\'.repeat(8)}`;
    const windows = scheduleTexts({ node: `${deep}node.exe`, bin: `${deep}mailpoll.js`, config: `${deep}mailpoll.yaml`, platform: 'win32' }).windows;
    expect(windows).toMatch(/^rem WARNING: the \/TR value is \d+ characters; schtasks accepts at most 261\./m);
    expect(scheduleTexts({ ...plain, platform: 'win32' }).windows).not.toContain('WARNING');
  });

  it('prints the exact systemd service (oneshot, a dedicated user suggested) and timer (minutely, persistent)', () => {
    const { systemd } = scheduleTexts(plain);
    expect(systemd.service).toBe([
      '# /etc/systemd/system/mailpoll.service: one `mailpoll fetch` run; mailpoll.timer starts it every minute.',
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
      'ExecStart=/usr/bin/node /opt/mailpoll/bin/mailpoll.js fetch --config /etc/mailpoll/mailpoll.yaml',
      '# Output and logs go to the journal: journalctl -u mailpoll.service',
      '',
    ].join('\n'));
    expect(systemd.timer).toBe([
      '# /etc/systemd/system/mailpoll.timer, then: systemctl daemon-reload && systemctl enable --now mailpoll.timer',
      '[Unit]',
      'Description=Run mailpoll fetch every minute',
      '',
      '[Timer]',
      'OnCalendar=minutely',
      'Persistent=true',
      '',
      '[Install]',
      'WantedBy=timers.target',
      '',
    ].join('\n'));
  });

  it('quotes ExecStart paths with spaces, %, $ and quotes', () => {
    const { systemd } = scheduleTexts({ node: '/usr/bin/node', bin: '/opt/mail poll/bin/mailpoll.js', config: '/srv/50% $x "q"/m.yaml', platform: 'linux' });
    expect(systemd.service).toContain('\nExecStart=/usr/bin/node "/opt/mail poll/bin/mailpoll.js" fetch --config "/srv/50%% $$x \\"q\\"/m.yaml"\n');
  });

  it('notes on texts for another platform that the paths are this machine\'s', () => {
    const onWindows = scheduleTexts({ ...plain, platform: 'win32' });
    expect(onWindows.cron.split('\n')[0]).toBe("# These paths are this win32 machine's: run `mailpoll schedule` on the machine that will run it.");
    expect(onWindows.windows).not.toContain('These paths');
    const onLinux = scheduleTexts(plain);
    expect(onLinux.cron).not.toContain('These paths');
    expect(onLinux.systemd.service).not.toContain('These paths');
    expect(onLinux.windows.split('\n')[0]).toBe("rem These paths are this linux machine's: run `mailpoll schedule` on the machine that will run it.");
  });

  it('refuses a path with a line break: no scheduler can carry it', () => {
    expect(() => scheduleTexts({ ...plain, config: '/etc/evil\n* * * * * rm -rf /' })).toThrow(ConfigError);
  });
});

describe('formatSchedule', () => {
  const texts = { cron: 'CRON\n', windows: 'WIN\n', systemd: { service: 'SERVICE\n', timer: 'TIMER\n' } };

  it('prints all three under headings when nothing is selected', () => {
    expect(formatSchedule(texts, {})).toBe([
      '### crontab (Linux, macOS, BSD): add this line with `crontab -e`',
      '',
      'CRON',
      '',
      '### Windows Task Scheduler: run this in cmd.exe',
      '',
      'WIN',
      '',
      '### systemd: two unit files, mailpoll.service and mailpoll.timer',
      '',
      'SERVICE',
      '',
      'TIMER',
      '',
    ].join('\n'));
  });

  it('prints one selected text as it is, ready to redirect', () => {
    expect(formatSchedule(texts, { cron: true })).toBe('CRON\n');
    expect(formatSchedule(texts, { windows: true })).toBe('WIN\n');
    expect(formatSchedule(texts, { systemd: true })).toBe('SERVICE\n\nTIMER\n');
  });
});
