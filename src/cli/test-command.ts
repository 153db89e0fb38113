import type { Command } from 'commander';
import type { Credentials } from '../auth/login.js';
import type { MailboxConfig } from '../config/types.js';
import type { Db } from '../store/database.js';
import { ConfigError } from '../errors.js';
import { scrub } from '../log.js';
import type { ProbeResult, ProbeStep } from '../sources/probe.js';
import { EXIT } from './exit-codes.js';
import type { GlobalOptions } from './main.js';

/** Mailboxes probed at once. */
const CONCURRENCY = 4;

/**
 * `mailpoll test [NAME]...`. main.ts imports this module on every run, so its top level imports
 * only what main has loaded anyway; the config loader, imapflow and the POP3 client load when the
 * command runs.
 */
export function registerTestCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('test')
    .description('connect to each mailbox, show TLS and certificate, log in, open the folder and count; changes nothing')
    .argument('[name...]', 'only these mailboxes (default: all)')
    .option('--json', 'print the results as JSON')
    .action(async (names: string[], opts: { json?: boolean }) => {
      process.exitCode = await testCommand({ ...globals(), names, json: opts.json === true });
    });
}

export interface TestCommandOptions extends GlobalOptions {
  names: string[];
  json: boolean;
}

/**
 * Probes the selected mailboxes (all when no name is given) and prints one block per mailbox.
 * Returns 0 when every probe worked, else 1; an unknown name is a ConfigError (exit 2).
 * Opens the database only for the OAuth2 token cache, and only when a selected mailbox gets its
 * token from a token endpoint: a refresh token the endpoint rotates must be kept for the next
 * fetch, and a cached token saves a request. Nothing else in it is read or written.
 */
export async function testCommand(opts: TestCommandOptions): Promise<number> {
  const { configPath, loadConfig } = await import('../config/load.js');
  const file = configPath(opts.config);
  const config = loadConfig(file);
  const unknown = opts.names.filter((name) => !config.mailboxes.some((m) => m.name === name));
  if (unknown.length > 0) {
    throw new ConfigError(unknown.map((name) => ({ file, line: undefined, column: undefined, field: 'NAME', message: `no mailbox named "${name}"` })));
  }
  const selected = opts.names.length === 0 ? config.mailboxes : config.mailboxes.filter((m) => opts.names.includes(m.name));
  const { openTokenCache } = await import('../auth/credentials.js');
  const cache = openTokenCache(selected, config.database);
  let probed: ProbeResult[];
  try {
    probed = await probeAll(selected, cache);
  } finally {
    cache?.close();
  }
  const results = probed.map(scrubResult);
  process.stdout.write(opts.json ? `${JSON.stringify(results, null, 2)}\n` : formatProbes(results));
  return results.every((r) => r.ok) ? EXIT.OK : EXIT.FAILED;
}

async function probeAll(mailboxes: readonly MailboxConfig[], cache: Db | undefined): Promise<ProbeResult[]> {
  const { resolveCredentials } = await import('../auth/credentials.js');
  const { failedProbe, probeMailbox } = await import('../sources/probe.js');
  const results: ProbeResult[] = new Array(mailboxes.length);
  let next = 0;
  const worker = async () => {
    while (next < mailboxes.length) {
      const index = next++;
      const mailbox = mailboxes[index] as MailboxConfig;
      let credentials: Credentials;
      try {
        credentials = await resolveCredentials(mailbox, cache);
      } catch (err) {
        results[index] = failedProbe(mailbox, 'secret', err);
        continue;
      }
      results[index] = await probeMailbox(mailbox, credentials);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(CONCURRENCY, mailboxes.length)) }, worker));
  return results;
}

/** Error texts may echo what the server was sent; every registered secret is masked. */
function scrubResult(r: ProbeResult): ProbeResult {
  if (r.error === null) return r;
  return {
    ...r,
    error: {
      ...r.error,
      message: scrub(r.error.message),
      serverResponse: r.error.serverResponse === null ? null : scrub(r.error.serverResponse),
    },
  };
}

const STEP_LABEL: Record<ProbeStep, string> = {
  secret: 'credentials',
  connect: 'connect',
  login: 'login',
  folder: 'folder',
  count: 'messages',
  logout: 'logout',
};

/** The human-readable report: one block per mailbox, then a one-line verdict. */
export function formatProbes(results: readonly ProbeResult[]): string {
  const blocks = results.map(formatProbe);
  const failed = results.filter((r) => !r.ok).map((r) => r.mailbox);
  const verdict = failed.length === 0
    ? `all ${results.length} mailbox(es) ok; nothing was changed on the servers`
    : `${results.length - failed.length} of ${results.length} mailbox(es) ok; failed: ${failed.join(', ')}`;
  return `${blocks.join('\n')}\n${verdict}\n`;
}

export function formatProbe(r: ProbeResult): string {
  const lines: string[] = [`${r.mailbox}  (${r.protocol}, ${r.host}:${r.port}, tls: ${r.tlsMode}, user ${r.username})`];
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(13)} ${value}`);
  const reached = (step: ProbeStep) => r.ok || (r.failedAt !== null && stepIndex(r.failedAt) > stepIndex(step));

  if (r.tls !== null) {
    row('tls', `${r.tls.protocol}, ${r.tls.cipher}, certificate ${r.tls.verified ? 'verified' : 'NOT verified'}`);
    const cert = r.tls.certificate;
    if (cert !== null) {
      row('subject', cert.subject);
      row('issuer', cert.issuer);
      if (cert.subjectAltName !== null) row('names', cert.subjectAltName);
      if (cert.validTo !== null && cert.daysUntilExpiry !== null) {
        const days = cert.daysUntilExpiry;
        const when = days < 0 ? `EXPIRED ${-days} day(s) ago` : `in ${days} day(s)`;
        row('expires', `${cert.validTo.replace('.000Z', 'Z')} (${when})`);
      }
    }
  } else if (r.tlsMode === 'none' && reached('connect')) {
    row('tls', 'none: plain text');
  }
  if (r.loggedIn) row('login', 'ok');
  if (r.counts?.protocol === 'imap') {
    const c = r.counts;
    row('folder', `${c.folder}, opened read-only`);
    row('messages', `${c.messages} (${c.unseen} unseen), UIDVALIDITY ${c.uidValidity}, UIDNEXT ${c.uidNext}`);
  } else if (r.counts?.protocol === 'pop3') {
    row('messages', `${r.counts.messages}, ${r.counts.bytes} bytes`);
  }
  if (r.capabilities.length > 0) wrap(r.capabilities, 100 - 16).forEach((line, i) => row(i === 0 ? 'capabilities' : '', line));
  for (const w of r.warnings) row('warning', w);
  if (r.ok) {
    row('result', `ok (${(r.durationMs / 1000).toFixed(1)} s)`);
  } else {
    const code = r.error?.code ?? 'UNEXPECTED';
    const step = r.failedAt === null ? '' : ` at ${STEP_LABEL[r.failedAt]}`;
    row('result', `FAILED${step}: ${code}: ${r.error?.message ?? 'unknown error'}`);
  }
  return `${lines.join('\n')}\n`;
}

const STEPS: readonly ProbeStep[] = ['secret', 'connect', 'login', 'folder', 'count', 'logout'];

function stepIndex(step: ProbeStep): number {
  return STEPS.indexOf(step);
}

/** Words into lines of at most `width` characters (a longer word gets a line of its own). */
function wrap(words: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of words) {
    if (current !== '' && current.length + 1 + word.length > width) {
      lines.push(current);
      current = word;
    } else {
      current = current === '' ? word : `${current} ${word}`;
    }
  }
  if (current !== '') lines.push(current);
  return lines;
}
