import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { configPath } from '../config/load.js';
import { STARTER_PASSWORD_FILE, starterConfig } from '../config/starter.js';
import { EXIT } from './exit-codes.js';
import type { GlobalOptions } from './main.js';

export interface InitCommandOptions extends GlobalOptions {
  /** The PATH argument; else --config, MAILPOLL_CONFIG, ./mailpoll.yaml. */
  path: string | undefined;
  force: boolean;
}

/**
 * `mailpoll init [PATH]`: writes the starter config and, beside it, the password file it refers
 * to (both mode 0600: they hold, or will hold, secrets). The config is never overwritten without
 * --force; an existing password file is never overwritten at all (it may hold the real password
 * by now). The pair passes `mailpoll check` as written; check warns about the placeholders.
 */
export async function initCommand(opts: InitCommandOptions): Promise<number> {
  const file = opts.path === undefined ? configPath(opts.config) : resolve(opts.path);
  if (existsSync(file) && !opts.force) {
    process.stderr.write(`mailpoll: ${file} already exists; nothing was written (use --force to overwrite it)\n`);
    return EXIT.USAGE;
  }
  const passwordName = `${basename(file, extname(file)) || 'mailpoll'}.password`;
  const passwordFile = join(dirname(file), passwordName);
  try {
    mkdirSync(dirname(file), { recursive: true });
    // 'wx' unless forced: two inits racing never overwrite each other either.
    writeFileSync(file, starterConfig(passwordName), { mode: 0o600, flag: opts.force ? 'w' : 'wx' });
    // An existing file keeps its mode on 'w': tighten it, it may get a password.
    chmodSync(file, 0o600);
  } catch (err) {
    process.stderr.write(`mailpoll: cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
    return EXIT.FAILED;
  }
  const lines = [`wrote ${file} (mode 0600)`];
  if (existsSync(passwordFile)) {
    lines.push(`kept ${passwordFile} as it is (it exists already)`);
  } else {
    writeFileSync(passwordFile, STARTER_PASSWORD_FILE, { mode: 0o600, flag: 'wx' });
    lines.push(`wrote ${passwordFile} (mode 0600): put the mailbox password on its first line`);
  }
  // The flag is left out only when a plain `mailpoll check` reads this very file.
  const flag = file === configPath(undefined) ? '' : ` --config ${quote(file)}`;
  lines.push('', 'Next:', `  edit ${file}: host, username, folder`, `  mailpoll${flag} check    validates it, connects nowhere`, `  mailpoll${flag} test     connects and logs in, changes nothing`);
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT.OK;
}

/** Quotes a path for a POSIX shell when it needs it. */
function quote(path: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}
