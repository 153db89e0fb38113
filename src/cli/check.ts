import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { configPath, loadConfig } from '../config/load.js';
import { maskedConfig, verifySecrets, type SecretCheck } from '../config/verify.js';
import { ConfigError, formatConfigProblem, type ConfigProblem } from '../errors.js';
import { scrub } from '../log.js';
import { EXIT } from './exit-codes.js';
import type { GlobalOptions } from './main.js';

export interface CheckCommandOptions extends GlobalOptions {
  json: boolean;
}

/**
 * `mailpoll check`: validates the config, then resolves every secret it refers to (environment
 * variable set, file readable, command runs and prints something) without connecting anywhere,
 * and prints the config as mailpoll reads it, secrets masked. Exit 0: all good (warnings allowed);
 * 2: the config itself is wrong (a ConfigError, printed by main, or as JSON here); 1: the config
 * is valid but a secret cannot be resolved, so that mailbox would fail when polled.
 * Secret values and command output never reach the output: only their length, and everything
 * printed passes through `scrub` once the values are known.
 */
export async function checkCommand(opts: CheckCommandOptions): Promise<number> {
  const file = configPath(opts.config);
  let config;
  try {
    config = loadConfig(file);
  } catch (err) {
    if (!(opts.json && err instanceof ConfigError)) throw err;
    process.stdout.write(`${JSON.stringify({ ok: false, file, problems: err.problems, warnings: [], secrets: [] }, null, 2)}\n`);
    return EXIT.USAGE;
  }
  const { secrets, warnings } = await verifySecrets(config, readFileSync(file, 'utf8'));
  const problems: ConfigProblem[] = secrets.filter((s) => !s.ok).map((s) => ({ file: s.file, line: s.line, column: s.column, field: s.field, message: s.problem ?? 'cannot be resolved' }));
  const ok = problems.length === 0;
  const masked = maskedConfig(config, secrets);

  if (opts.json) {
    const report = { ok, file, config: masked, secrets: secrets.map(publicCheck), problems, warnings };
    process.stdout.write(scrub(`${JSON.stringify(report, null, 2)}\n`));
    return ok ? EXIT.OK : EXIT.FAILED;
  }
  process.stdout.write(scrub(`# ${file}, as mailpoll reads it (secrets masked)\n${stringify(masked, { lineWidth: 0 })}`));
  const notes = [...warnings.map((w) => `warning: ${formatConfigProblem(w)}`), ...problems.map(formatConfigProblem)];
  if (notes.length > 0) process.stderr.write(scrub(`${notes.join('\n')}\n`));
  const sources = `${secrets.length} password source${secrets.length === 1 ? '' : 's'}`;
  if (!ok) {
    process.stderr.write(`mailpoll: ${problems.length} of ${sources} cannot be resolved; those mailboxes would fail\n`);
    return EXIT.FAILED;
  }
  const mailboxes = `${config.mailboxes.length} mailbox${config.mailboxes.length === 1 ? '' : 'es'}`;
  process.stdout.write(`\nok: ${mailboxes}, ${sources} resolved${warnings.length > 0 ? `, ${warnings.length} warning(s)` : ''}. Nothing was contacted: \`mailpoll test\` connects and logs in.\n`);
  return EXIT.OK;
}

/** A check as printed: without the reference object (a literal's value is in it). */
function publicCheck({ ref: _ref, ...rest }: SecretCheck): Omit<SecretCheck, 'ref'> {
  return rest;
}
