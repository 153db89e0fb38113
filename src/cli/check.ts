import { configPath, loadConfig } from '../config/load.js';
import { EXIT } from './exit-codes.js';
import type { GlobalOptions } from './main.js';

/** Validates the config; a ConfigError propagates to main, which prints it and exits 2. */
export async function checkCommand(opts: GlobalOptions): Promise<number> {
  const file = configPath(opts.config);
  const config = loadConfig(file);
  process.stdout.write(`${file}: ok, ${config.mailboxes.length} mailbox(es): ${config.mailboxes.map((m) => m.name).join(', ')}\n`);
  return EXIT.OK;
}
