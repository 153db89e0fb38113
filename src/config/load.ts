import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { parseBytes, parseDuration } from './duration.js';
import { normaliseOAuth2 } from './oauth2-config.js';
import { defaultsSchema, fileSchema, mailboxSchema, type MailboxInput } from './schema.js';
import type { Config, MailboxConfig, SecretRef } from './types.js';

type Path = (string | number)[];

const DEFAULT_PORTS = {
  imap: { implicit: 993, starttls: 143, none: 143 },
  pop3: { implicit: 995, starttls: 110, none: 110 },
} as const;

/** Which file to read: `--config`, else MAILPOLL_CONFIG, else ./mailpoll.yaml. */
export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.MAILPOLL_CONFIG ?? 'mailpoll.yaml');
}

/** Reads, validates and normalises a config file. Throws ConfigError naming file, line and field. */
export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(cause);
    throw new ConfigError([{ file, line: undefined, column: undefined, field: '(file)', message: reason }], { cause });
  }
  return parseConfig(text, file);
}

/** Validates config text; `file` is used for messages and to resolve relative paths. */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const at = (path: Path, field: string, message: string): ConfigProblem => {
    const pos = locate(doc, path, lineCounter);
    return { file, line: pos?.line, column: pos?.col, field, message };
  };

  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { file, line: pos?.line, column: pos?.col, field: '(yaml)', message: e.message.split('\n')[0] ?? e.message };
      }),
    );
  }

  const top = fileSchema.safeParse(doc.toJS() ?? {});
  if (!top.success) throw new ConfigError(zodProblems(top.error, [], at, doc.toJS()));
  const data = top.data;
  const problems: ConfigProblem[] = [];

  const defaults = defaultsSchema.safeParse(data.defaults ?? {});
  if (!defaults.success) problems.push(...zodProblems(defaults.error, ['defaults'], at, data.defaults));
  const defaultValues = defaults.success ? defaults.data : {};

  const baseDir = dirname(file);
  const mailboxes: MailboxConfig[] = [];
  const seen = new Map<string, number>();
  data.mailboxes.forEach((raw, index) => {
    const merged: Record<string, unknown> = { ...defaultValues, ...raw };
    // timeouts merge per key: a mailbox that sets only `connect` keeps the default `command`.
    if (isRecord(defaultValues.timeouts) && isRecord(raw.timeouts)) merged.timeouts = { ...defaultValues.timeouts, ...raw.timeouts };
    // A problem belongs to the mailbox when it sets the key, else to `defaults` when that sets it.
    const where = (path: Path, field: string, message: string): ConfigProblem => {
      const key = path[0];
      if (key !== undefined && !(key in raw) && data.defaults !== undefined && key in data.defaults) {
        return at(['defaults', ...path], `defaults.${field}`, `${message} (inherited by mailbox ${index + 1})`);
      }
      const own = key !== undefined && key in raw;
      return at(own ? ['mailboxes', index, ...path] : ['mailboxes', index], `mailboxes[${index}].${field}`, message);
    };
    const parsed = mailboxSchema.safeParse(merged);
    if (!parsed.success) {
      problems.push(...zodProblems(parsed.error, [], where, merged));
      return;
    }
    const input = parsed.data as MailboxInput & { protocol: 'imap' | 'pop3'; host: string; username: string };
    const first = seen.get(input.name);
    if (first !== undefined) {
      problems.push(where(['name'], 'name', `"${input.name}" is already the name of mailboxes[${first}]`));
      return;
    }
    seen.set(input.name, index);
    const checked = normaliseMailbox(input, baseDir, (path, msg) => problems.push(where(path, path.join('.'), msg)));
    if (checked) mailboxes.push(checked);
  });

  const http = data.http === undefined ? undefined : normaliseHttp(data.http, baseDir, (key, msg) => problems.push(at(['http', key], `http.${key}`, msg)));
  const pings = data.pings === undefined ? undefined : normalisePings(data.pings, (key, msg) => problems.push(at(['pings', key], `pings.${key}`, msg)));

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    file,
    database: resolve(baseDir, data.database ?? 'mailpoll.db'),
    mailboxes,
    tickets: {
      token: data.tickets?.token ?? '[#NUMBER]',
      loopGuard: {
        max: data.tickets?.loopGuard?.max ?? 10,
        windowMs: parseDuration(data.tickets?.loopGuard?.window ?? '1h') ?? 3_600_000,
      },
    },
    http,
    pings,
  };
}

/** `http:`: exactly one source for the API key, in the style of a mailbox password. */
function normaliseHttp(
  h: { apiKey?: string; apiKeyFile?: string; apiKeyCommand?: string },
  baseDir: string,
  problem: (key: string, message: string) => void,
): Config['http'] {
  const sources = (['apiKey', 'apiKeyFile', 'apiKeyCommand'] as const).filter((k) => h[k] !== undefined);
  if (sources.length === 0) problem('apiKey', 'no API key: set one of apiKey (e.g. ${MAILPOLL_API_KEY}), apiKeyFile or apiKeyCommand');
  if (sources.length > 1) problem(sources[1] ?? 'apiKey', `set only one of ${sources.join(', ')}`);
  if (h.apiKeyFile !== undefined) return { apiKey: { kind: 'file', path: resolve(baseDir, h.apiKeyFile) } };
  if (h.apiKeyCommand !== undefined) return { apiKey: { kind: 'command', command: h.apiKeyCommand } };
  const key = h.apiKey ?? '';
  return { apiKey: /\$\{[A-Za-z_][A-Za-z0-9_]*\}/.test(key) ? { kind: 'env', template: key } : { kind: 'literal', value: key } };
}

/** `pings:`: the failure URL defaults to the success URL plus `/fail`, as healthchecks.io expects. */
function normalisePings(
  p: { success: string; failure?: string; timeout?: string | number },
  problem: (key: string, message: string) => void,
): Config['pings'] {
  const timeoutMs = parseDuration(p.timeout ?? '5s') ?? 5_000;
  if (timeoutMs < 100 || timeoutMs > 60_000) problem('timeout', 'a ping timeout must be between 100ms and 60s (default 5s): a ping must never hold up a run');
  let failureUrl = p.failure;
  if (failureUrl === undefined) {
    const url = new URL(p.success);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/fail`;
    failureUrl = url.href;
  }
  return { successUrl: p.success, failureUrl, timeoutMs };
}

/** Applies defaults and the rules that span several fields. Reports through `problem`. */
function normaliseMailbox(
  m: MailboxInput & { protocol: 'imap' | 'pop3'; host: string; username: string },
  baseDir: string,
  problem: (path: Path, message: string) => void,
): MailboxConfig | undefined {
  let ok = true;
  const fail = (path: Path, message: string) => {
    ok = false;
    problem(path, message);
  };
  const tlsMode = m.tls ?? 'implicit';
  if (tlsMode === 'none' && m.allowPlaintext !== true) {
    fail(['tls'], 'tls: none sends the password in clear text; set allowPlaintext: true to accept that');
  }
  const sources = (['password', 'passwordFile', 'passwordCommand', 'oauth2'] as const).filter((k) => m[k] !== undefined);
  if (sources.length === 0) fail(['username'], 'no password: set one of password, passwordFile, passwordCommand or oauth2');
  const oauth2 = m.oauth2 === undefined ? undefined : normaliseOAuth2(m.oauth2, m.protocol, baseDir, (key, msg) => fail(key === undefined ? ['oauth2'] : ['oauth2', key], msg));
  if (sources.length > 1) fail([sources[1] ?? 'password'], `set only one of ${sources.join(', ')}`);

  const after = m.after ?? (m.protocol === 'imap' ? 'seen' : 'keep');
  if (m.protocol === 'pop3' && after !== 'keep' && after !== 'delete') {
    fail(['after'], `POP3 has no "${after}": use keep or delete`);
  }
  if (m.protocol === 'pop3' && m.folder !== undefined) fail(['folder'], 'POP3 has no folders; remove folder');
  if (m.protocol === 'pop3' && m.idle === true) fail(['idle'], 'IDLE is an IMAP extension; POP3 mailboxes are polled');
  if (m.every !== undefined && (parseDuration(m.every) ?? 0) < 10_000) fail(['every'], 'every must be at least 10s');
  if (m.healthWindow !== undefined && (parseDuration(m.healthWindow) ?? 0) <= (parseDuration(m.every ?? '5m') ?? 300_000)) {
    fail(['healthWindow'], 'healthWindow must be longer than every, or the mailbox would count as unhealthy between two polls');
  }
  if (after === 'move' && m.moveTo === undefined) fail(['after'], 'after: move needs moveTo: FOLDER');
  if (after !== 'move' && m.moveTo !== undefined) fail(['moveTo'], 'moveTo is used only with after: move');
  if (!ok) return undefined;

  return {
    name: m.name,
    protocol: m.protocol,
    host: m.host,
    port: m.port ?? DEFAULT_PORTS[m.protocol][tlsMode],
    tls: {
      mode: tlsMode,
      caFile: m.ca === undefined ? undefined : resolve(baseDir, m.ca),
      insecureSkipVerify: m.insecureSkipVerify ?? false,
      allowPlaintext: m.allowPlaintext ?? false,
    },
    username: m.username,
    password: m.oauth2 === undefined ? secretRef(m, baseDir) : undefined,
    ...(oauth2 === undefined ? {} : { oauth2 }),
    folder: m.folder ?? 'INBOX',
    after,
    moveTo: m.moveTo,
    maxMessages: m.maxMessages ?? 50,
    maxMessageBytes: parseBytes(m.maxMessageBytes ?? 50 * 1024 * 1024) ?? 50 * 1024 * 1024,
    maxBytes: parseBytes(m.maxBytes ?? 500 * 1024 * 1024) ?? 500 * 1024 * 1024,
    oversize: m.oversize ?? 'skip',
    everyMs: parseDuration(m.every ?? '5m') ?? 300_000,
    healthWindowMs: m.healthWindow === undefined ? undefined : parseDuration(m.healthWindow),
    idle: m.idle ?? false,
    policy: { autoReplies: m.autoReplies ?? 'thread', bounces: m.bounces ?? 'thread' },
    timeouts: {
      connectMs: parseDuration(m.timeouts?.connect ?? '30s') ?? 30_000,
      commandMs: parseDuration(m.timeouts?.command ?? '120s') ?? 120_000,
    },
  };
}

function secretRef(m: MailboxInput, baseDir: string): SecretRef {
  if (m.passwordFile !== undefined) return { kind: 'file', path: resolve(baseDir, m.passwordFile) };
  if (m.passwordCommand !== undefined) return { kind: 'command', command: m.passwordCommand };
  const password = m.password ?? '';
  return /\$\{[A-Za-z_][A-Za-z0-9_]*\}/.test(password) ? { kind: 'env', template: password } : { kind: 'literal', value: password };
}

function zodProblems(
  error: z.ZodError,
  prefix: Path,
  at: (path: Path, field: string, message: string) => ConfigProblem,
  input: unknown,
): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of error.issues) {
    const path = [...prefix, ...(issue.path as Path)];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push(at([...path, key], fieldName([...issue.path as Path, key], prefix), 'unknown key'));
      continue;
    }
    const missing = issue.code === 'invalid_type' && valueAt(input, issue.path as Path) === undefined;
    const message = missing ? 'missing required field' : issue.message;
    out.push(at(path, fieldName(issue.path as Path, prefix), message));
  }
  return out;
}

function fieldName(path: Path, prefix: Path): string {
  return [...prefix, ...path].reduce<string>((acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '') || '(top level)';
}

/** Line and column of the YAML node at `path` (its key, for a map entry), or the nearest parent. */
export function locate(doc: Document, path: Path, counter: LineCounter): { line: number; col: number } | undefined {
  let node: unknown = doc.contents;
  let offset = (doc.contents as YamlNode | null)?.range?.[0];
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === seg);
      if (!pair) break;
      offset = (pair.key as YamlNode | null)?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as YamlNode | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : counter.linePos(offset);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function valueAt(root: unknown, path: Path): unknown {
  let node = root;
  for (const seg of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[seg];
  }
  return node;
}
