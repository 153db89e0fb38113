import { stat } from 'node:fs/promises';
import { isMap, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { errorMessage, type ConfigProblem } from '../errors.js';
import { registerSecret } from '../log.js';
import { locate } from './load.js';
import { oauth2SecretFields } from './oauth2-config.js';
import { resolveSecret } from './secrets.js';
import { PLACEHOLDER_HOST, PLACEHOLDER_PASSWORD } from './starter.js';
import type { Config, MailboxConfig, SecretRef } from './types.js';

/**
 * `mailpoll check`'s second half: after the config parsed, every secret it refers to is resolved
 * the way a poll would (environment, file, command), without connecting anywhere. Results carry
 * the file, line and field of the reference and the secret's length, never its value; each value
 * is registered with `scrub` so nothing printed afterwards can contain it.
 */

/** The outcome for one secret reference. */
export interface SecretCheck {
  /** The mailbox that uses it; undefined for the config's own secrets (`http.apiKey`). */
  mailbox: string | undefined;
  /** As in config errors: `mailboxes[0].passwordFile`, `defaults.passwordFile` when inherited, `http.apiKeyFile`. */
  field: string;
  file: string;
  line: number | undefined;
  column: number | undefined;
  kind: SecretRef['kind'];
  /** Where the secret comes from, safe to print: `${VAR}`, a path, a command; a literal is `***`. */
  source: string;
  ok: boolean;
  /** Characters of the resolved secret. */
  length: number | undefined;
  /** Why it cannot be resolved; never contains the secret or a command's output. */
  problem: string | undefined;
  /** The reference itself, to find it again in the config (by identity). */
  ref: SecretRef;
}

export interface Verification {
  secrets: SecretCheck[];
  /** Things that work but probably should not stay so (placeholders, readable password files). */
  warnings: ConfigProblem[];
}

export interface VerifyDeps {
  env: NodeJS.ProcessEnv;
  resolve: typeof resolveSecret;
  /** File mode bits, or undefined when unknown (no such file, or Windows). */
  mode: (path: string) => Promise<number | undefined>;
}

const defaultDeps: VerifyDeps = {
  env: process.env,
  resolve: resolveSecret,
  mode: async (path) => (process.platform === 'win32' ? undefined : (await stat(path).catch(() => undefined))?.mode),
};

/** The YAML key each kind of password reference is written under. */
const PASSWORD_KEY: Record<SecretRef['kind'], string> = { literal: 'password', env: 'password', file: 'passwordFile', command: 'passwordCommand' };

const API_KEY_KEY: Record<SecretRef['kind'], string> = { literal: 'apiKey', env: 'apiKey', file: 'apiKeyFile', command: 'apiKeyCommand' };

/** Every secret a mailbox refers to, with the YAML key it is written under. */
export function secretFields(mailbox: MailboxConfig): { key: string; ref: SecretRef }[] {
  if (mailbox.password === undefined) return oauth2SecretFields(mailbox);
  return [{ key: PASSWORD_KEY[mailbox.password.kind], ref: mailbox.password }];
}

/** A secret reference and where it is written. */
interface Target {
  mailbox: string | undefined;
  at: Omit<ConfigProblem, 'message'>;
  ref: SecretRef;
}

function targets(config: Config, where: Locator): Target[] {
  const out: Target[] = config.mailboxes.flatMap((mailbox, index) =>
    secretFields(mailbox).map(({ key, ref }) => ({ mailbox: mailbox.name, at: where.mailbox(index, key), ref })),
  );
  if (config.http !== undefined) out.push({ mailbox: undefined, at: where.top(['http', API_KEY_KEY[config.http.apiKey.kind]]), ref: config.http.apiKey });
  return out;
}

/** `text` is the config file's text (the one `config` was parsed from), for line numbers. */
export async function verifySecrets(config: Config, text: string, deps: Partial<VerifyDeps> = {}): Promise<Verification> {
  const d = { ...defaultDeps, ...deps };
  const where = locator(config.file, text);
  const warnings: ConfigProblem[] = [];
  const configMode = await d.mode(config.file);

  const secrets = await Promise.all(
    targets(config, where).map(async ({ mailbox, at, ref }): Promise<SecretCheck> => {
      const base = { mailbox, ...at, kind: ref.kind, source: sourceOf(ref), ref };
      const warn = (message: string) => warnings.push({ ...at, message });
      let value: string;
      try {
        value = await resolveChecked(ref, mailbox ?? at.field, d);
      } catch (err) {
        return { ...base, ok: false, length: undefined, problem: errorMessage(err) };
      }
      registerSecret(value);
      if (ref.kind === 'literal' && configMode !== undefined && (configMode & 0o077) !== 0) {
        warn(`a secret is written in ${config.file}, which others can read (mode ${octal(configMode)}): chmod 600 it, or use a file, \${VAR} or a command`);
      }
      if (ref.kind === 'file') {
        const mode = await d.mode(ref.path);
        if (mode !== undefined && (mode & 0o077) !== 0) warn(`${ref.path} can be read by others (mode ${octal(mode)}): chmod 600 ${ref.path}`);
        if (value === PLACEHOLDER_PASSWORD) warn(`${ref.path} still holds the placeholder written by mailpoll init: put the password on its first line`);
      }
      return { ...base, ok: true, length: value.length, problem: undefined };
    }),
  );

  config.mailboxes.forEach((mailbox, index) => {
    if (PLACEHOLDER_HOST.test(mailbox.host)) warnings.push({ ...where.mailbox(index, 'host'), message: `${mailbox.host} is an example host: set the mail server's name` });
  });
  return { secrets, warnings };
}

/** Resolves like a poll does, and also refuses what would only fail later (unset or empty). */
async function resolveChecked(ref: SecretRef, mailbox: string, d: VerifyDeps): Promise<string> {
  if (ref.kind === 'env') {
    const names = [...ref.template.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1] ?? '');
    const unset = names.filter((n) => d.env[n] === undefined);
    if (unset.length > 0) throw new Error(`environment variable${unset.length > 1 ? 's' : ''} ${unset.join(', ')} ${unset.length > 1 ? 'are' : 'is'} not set`);
    const empty = names.filter((n) => d.env[n] === '');
    if (empty.length > 0) throw new Error(`environment variable ${empty.join(', ')} is set but empty`);
  }
  const value = await d.resolve(ref, mailbox, d.env);
  if (value === '') throw new Error(ref.kind === 'file' ? `the first line of ${ref.path} is empty` : 'the password is empty');
  return value;
}

interface Locator {
  /** Key `key` of mailbox `index`: its own, or the inherited default's. */
  mailbox(index: number, key: string): Omit<ConfigProblem, 'message'>;
  /** A key outside the mailboxes, e.g. ['http', 'apiKey']. */
  top(path: string[]): Omit<ConfigProblem, 'message'>;
}

/** File, line, column and field name of config keys, from the text the config was parsed from. */
function locator(file: string, text: string): Locator {
  const counter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter: counter });
  const has = (path: (string | number)[]) => {
    const node = doc.getIn(path.slice(0, -1), true);
    const key = path[path.length - 1];
    return (isMap(node) || isSeq(node)) && node.has(key);
  };
  const at = (path: (string | number)[], field: string) => {
    const pos = locate(doc, path, counter);
    return { file, line: pos?.line, column: pos?.col, field };
  };
  return {
    mailbox: (index, key) =>
      // A dotted key (`oauth2.tokenFile`) is a path below the mailbox.
      has(['mailboxes', index, ...key.split('.')]) || !has(['defaults', ...key.split('.')])
        ? at(['mailboxes', index, ...key.split('.')], `mailboxes[${index}].${key}`)
        : at(['defaults', ...key.split('.')], `defaults.${key}`),
    top: (path) => at(path, path.join('.')),
  };
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`;

function sourceOf(ref: SecretRef): string {
  switch (ref.kind) {
    case 'literal':
      return '***';
    case 'env':
      return ref.template;
    case 'file':
      return ref.path;
    case 'command':
      return ref.command;
  }
}

/** A checked secret as one line: where it comes from and whether it resolved, never its value. */
export function describeSecret(check: Pick<SecretCheck, 'kind' | 'source' | 'ok' | 'length' | 'problem'>): string {
  const chars = `${check.length ?? 0} chars`;
  const resolved = { literal: `written in the config file, ${chars}`, env: `set, ${chars}`, file: `readable, first line ${chars}`, command: `ran, printed ${chars}` }[check.kind];
  return `${origin(check.kind, check.source)} (${check.ok ? resolved : (check.problem ?? 'cannot be resolved')})`;
}

function origin(kind: SecretRef['kind'], source: string): string {
  return kind === 'file' || kind === 'command' ? `${kind} ${source}` : source;
}

/** A reference that was not checked, masked all the same. */
function maskRef(ref: SecretRef): string {
  return origin(ref.kind, sourceOf(ref));
}

/**
 * The normalised config as plain data for printing, secrets masked: every SecretRef, wherever it
 * sits (also in keys added later), becomes a description; `...Ms` durations and `...Bytes` sizes
 * are written the way the config file writes them.
 */
export function maskedConfig(config: Config, checks: readonly SecretCheck[]): Record<string, unknown> {
  const byRef = new Map<SecretRef, SecretCheck>(checks.map((c) => [c.ref, c]));
  const walk = (value: unknown): unknown => {
    if (isSecretRef(value)) {
      const check = byRef.get(value);
      return check === undefined ? maskRef(value) : describeSecret(check);
    }
    if (Array.isArray(value)) return value.map(walk);
    if (typeof value !== 'object' || value === null) return value;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      if (v === undefined) continue;
      // A dead-man ping URL carries its check's secret id in the path: only the host is shown.
      if ((key === 'successUrl' || key === 'failureUrl') && typeof v === 'string') out[key] = maskUrl(v);
      else if (typeof v === 'number' && /.Ms$/.test(key)) out[key.slice(0, -2)] = formatDuration(v);
      else if (typeof v === 'number' && /Bytes$/.test(key)) out[key] = formatSize(v);
      else out[key] = walk(v);
    }
    return out;
  };
  return walk(config) as Record<string, unknown>;
}

function isSecretRef(v: unknown): v is SecretRef {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const kind = (v as { kind?: unknown }).kind;
  return kind === 'literal' || kind === 'env' || kind === 'file' || kind === 'command';
}

/** 300000 -> "5m", in the largest unit that divides it. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** 52428800 -> "50MB", in the largest binary unit that divides it. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GB', 1024 ** 3], ['MB', 1024 ** 2], ['KB', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

function maskUrl(href: string): string {
  try {
    return `${new URL(href).origin}/***`;
  } catch {
    return '***';
  }
}
