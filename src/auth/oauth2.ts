/**
 * OAuth2 access tokens for mailboxes that log in with XOAUTH2/OAUTHBEARER.
 *
 * Four sources (config `oauth2:`): a command that prints a token, a file whose first line is one,
 * the client-credentials grant (RFC 6749 section 4.4; Microsoft 365 app-only access) and the
 * refresh-token grant (RFC 6749 section 6; Gmail, delegated Microsoft 365). Tokens from the two
 * grants are cached in the database (`oauth_tokens`) and reused until shortly before they expire
 * (5 minutes, or 10% of their lifetime when that is less); a refresh token the endpoint rotates
 * is kept there too, so the next refresh uses the new one.
 *
 * Every token and client secret is registered with `scrub`. A failure is a TokenError naming the
 * mailbox, the step (token command, token file, token endpoint request, token endpoint answer)
 * and what the endpoint said (`error`, `error_description`), never a secret.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolveSecret } from '../config/secrets.js';
import type { OAuth2Source, SecretRef } from '../config/types.js';
import { MailpollError, TokenError, errorMessage } from '../errors.js';
import { registerSecret, scrub } from '../log.js';
import type { Db } from '../store/database.js';

/** How long the token endpoint may take. */
export const TOKEN_REQUEST_TIMEOUT_MS = 30_000;
/** A cached token is replaced this long before it expires at the latest. */
export const REFRESH_MARGIN_MS = 5 * 60_000;

export type TokenStep = 'token command' | 'token file' | 'token endpoint request' | 'token endpoint answer' | 'client secret' | 'refresh token';

export interface TokenDeps {
  /** The database holding the token cache; without it every call asks the endpoint. */
  db?: Db | undefined;
  fetch?: typeof fetch;
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
}

/** A row of `oauth_tokens`. */
export interface CachedToken {
  mailbox: string;
  access_token: string | null;
  expires_at: string | null;
  refreshed_at: string | null;
  refresh_token: string | null;
  source: string | null;
}

/**
 * Whether a cached access token may still be used at `now`: it must not be within the refresh
 * margin of its expiry, the margin being 5 minutes or 10% of the token's lifetime, whichever is
 * smaller (a 10-minute token is replaced after 9). No expiry known: never reused.
 */
export function tokenIsFresh(expiresAt: string | null, refreshedAt: string | null, now: Date): boolean {
  if (expiresAt === null) return false;
  const expires = Date.parse(expiresAt);
  if (Number.isNaN(expires)) return false;
  const issued = refreshedAt === null ? Number.NaN : Date.parse(refreshedAt);
  const lifetime = Number.isNaN(issued) ? Number.POSITIVE_INFINITY : Math.max(0, expires - issued);
  const margin = Math.min(REFRESH_MARGIN_MS, lifetime / 10);
  return now.getTime() < expires - margin;
}

/** In-flight requests per mailbox: the daemon's poll and IDLE watcher share one token request. */
const inFlight = new Map<string, Promise<string>>();

/** A current access token for the mailbox, from its configured source. */
export function obtainAccessToken(mailbox: string, source: OAuth2Source, deps: TokenDeps = {}): Promise<string> {
  if (source.kind === 'tokenCommand' || source.kind === 'tokenFile') return tokenFromSource(mailbox, source, deps);
  const running = inFlight.get(mailbox);
  if (running !== undefined) return running;
  const request = tokenFromEndpoint(mailbox, source, deps).finally(() => inFlight.delete(mailbox));
  inFlight.set(mailbox, request);
  return request;
}

/** Drops the cached access token (the server refused it); a rotated refresh token is kept. */
export function forgetAccessToken(db: Db | undefined, mailbox: string): void {
  if (db === undefined) return;
  try {
    db.prepare('UPDATE oauth_tokens SET access_token = NULL, expires_at = NULL WHERE mailbox = ?').run(mailbox);
  } catch {
    // A cache that cannot be cleared only costs one more failed login.
  }
}

function fail(mailbox: string, step: TokenStep, detail: string, cause?: unknown, serverResponse?: string): TokenError {
  return new TokenError(scrub(`OAuth2 token for mailbox ${mailbox}: ${step}: ${detail}`), {
    mailbox,
    cause,
    serverResponse: serverResponse === undefined ? undefined : scrub(serverResponse),
  });
}

// ---- tokenCommand / tokenFile ------------------------------------------------------------------

async function tokenFromSource(mailbox: string, source: Extract<OAuth2Source, { kind: 'tokenCommand' | 'tokenFile' }>, deps: TokenDeps): Promise<string> {
  let token: string;
  if (source.kind === 'tokenFile') {
    const path = source.token.path;
    try {
      token = ((await readFile(path, 'utf8')).split(/\r?\n/)[0] ?? '').trim();
    } catch (cause) {
      throw fail(mailbox, 'token file', `cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, cause);
    }
    if (token === '') throw fail(mailbox, 'token file', `the first line of ${path} is empty`);
  } else {
    token = (await runTokenCommand(mailbox, source.token.command, deps.env)).trim();
  }
  if (/\s/.test(token)) {
    throw fail(mailbox, source.kind === 'tokenFile' ? 'token file' : 'token command', 'the token contains white space: expected the bare access token on one line');
  }
  registerSecret(token);
  return token;
}

function runTokenCommand(mailbox: string, command: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const [shell, flag] = process.platform === 'win32' ? ['cmd.exe', '/c'] : ['/bin/sh', '-c'];
  return new Promise((resolveOut, reject) => {
    execFile(shell, [flag, command], { timeout: 30_000, maxBuffer: 256 * 1024, windowsHide: true, env }, (err, stdout, stderr) => {
      // stdout may be the token: it never goes into a message. stderr is the command's own words.
      if (err) {
        const why = err.killed ? 'timed out after 30 s' : `exited with code ${String(err.code ?? 'unknown')}`;
        const said = firstLine(stderr);
        reject(fail(mailbox, 'token command', `${command} ${why}${said ? `: ${said}` : ''}`));
      } else {
        const token = stdout.split(/\r?\n/).find((l) => l.trim() !== '') ?? '';
        if (token === '') reject(fail(mailbox, 'token command', `${command} printed nothing`));
        else resolveOut(token);
      }
    });
  });
}

function firstLine(text: string): string {
  return (text.split(/\r?\n/).find((l) => l.trim() !== '') ?? '').trim().slice(0, 300);
}

// ---- token endpoint ----------------------------------------------------------------------------

type EndpointSource = Extract<OAuth2Source, { kind: 'clientCredentials' | 'refreshToken' }>;

async function tokenFromEndpoint(mailbox: string, source: EndpointSource, deps: TokenDeps): Promise<string> {
  const now = deps.now ?? (() => new Date());
  const env = deps.env ?? process.env;
  const configuredRefresh = source.kind === 'refreshToken' ? await secret(mailbox, 'refresh token', source.refreshToken, env) : undefined;
  const fingerprint = sourceFingerprint(source, configuredRefresh);
  const cached = readCache(deps.db, mailbox);
  const usable = cached !== undefined && cached.source === fingerprint ? cached : undefined;
  if (usable?.access_token && tokenIsFresh(usable.expires_at, usable.refreshed_at, now())) {
    registerSecret(usable.access_token);
    return usable.access_token;
  }

  const clientSecret = source.clientSecret === undefined ? undefined : await secret(mailbox, 'client secret', source.clientSecret, env);
  const form = new URLSearchParams();
  let refreshUsed: string | undefined;
  if (source.kind === 'clientCredentials') {
    form.set('grant_type', 'client_credentials');
  } else {
    refreshUsed = usable?.refresh_token ?? configuredRefresh ?? '';
    registerSecret(refreshUsed);
    form.set('grant_type', 'refresh_token');
    form.set('refresh_token', refreshUsed);
  }
  form.set('client_id', source.clientId);
  if (clientSecret !== undefined) form.set('client_secret', clientSecret);
  if (source.scope !== undefined) form.set('scope', source.scope);

  const requestedAt = now();
  const answer = await postForm(mailbox, source.tokenUrl, form, deps.fetch ?? fetch);
  let token;
  try {
    token = parseTokenAnswer(mailbox, source.tokenUrl, answer);
  } catch (err) {
    // Another process (the daemon's watcher, `mailpoll test`, a cron run) may have refreshed with
    // the same refresh token a moment earlier: an endpoint that rotates refresh tokens then refuses
    // ours as used. Its result is in the cache by now.
    const theirs = source.kind === 'refreshToken' ? refreshedMeanwhile(deps.db, mailbox, fingerprint, usable, now()) : undefined;
    if (theirs === undefined) throw err;
    registerSecret(theirs);
    return theirs;
  }
  registerSecret(token.accessToken);
  if (token.refreshToken !== undefined) registerSecret(token.refreshToken);

  const expiresAt = token.expiresInS === undefined ? null : new Date(requestedAt.getTime() + token.expiresInS * 1000).toISOString();
  writeCache(deps.db, {
    mailbox,
    access_token: token.accessToken,
    expires_at: expiresAt,
    refreshed_at: requestedAt.toISOString(),
    refresh_token: source.kind === 'refreshToken' ? (token.refreshToken ?? refreshUsed ?? null) : null,
    source: fingerprint,
  });
  return token.accessToken;
}

/**
 * A fresh access token that another process cached after `before` was read (its refresh token
 * differs, or there was no cache row then), for the same configured source; else undefined.
 */
function refreshedMeanwhile(db: Db | undefined, mailbox: string, fingerprint: string, before: CachedToken | undefined, at: Date): string | undefined {
  const current = readCache(db, mailbox);
  if (current === undefined || current.source !== fingerprint || !current.access_token) return undefined;
  if (before !== undefined && current.refreshed_at === before.refreshed_at && current.refresh_token === before.refresh_token) return undefined;
  return tokenIsFresh(current.expires_at, current.refreshed_at, at) ? current.access_token : undefined;
}

async function secret(mailbox: string, step: TokenStep, ref: SecretRef, env: NodeJS.ProcessEnv): Promise<string> {
  let value: string;
  try {
    value = await resolveSecret(ref, mailbox, env);
  } catch (err) {
    // resolveSecret speaks of "passwordFile"/"passwordCommand": say which secret it was.
    const detail = errorMessage(err).replace(/^password(File|Command)\b/, (_m, kind: string) => `${step === 'client secret' ? 'clientSecret' : 'refreshToken'}${kind}`);
    throw fail(mailbox, step, detail, err);
  }
  if (value === '') throw fail(mailbox, step, 'it is empty');
  registerSecret(value);
  return value;
}

/** Identifies the configured flow; a cached token from another configuration is not reused. */
function sourceFingerprint(source: EndpointSource, refreshToken: string | undefined): string {
  const parts = [source.kind, source.tokenUrl, source.clientId, source.scope ?? '', refreshToken ?? ''];
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

interface HttpAnswer {
  status: number;
  body: string;
}

async function postForm(mailbox: string, url: string, form: URLSearchParams, doFetch: typeof fetch): Promise<HttpAnswer> {
  let res: Response;
  try {
    // Node's fetch verifies the server certificate against its CA store (NODE_EXTRA_CA_CERTS adds to it).
    res = await doFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
      redirect: 'error',
      signal: AbortSignal.timeout(TOKEN_REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    throw fail(mailbox, 'token endpoint request', `POST ${url} failed: ${networkReason(err)}`, err);
  }
  let body: string;
  try {
    body = await res.text();
  } catch (err) {
    throw fail(mailbox, 'token endpoint answer', `reading the answer of ${url} (HTTP ${res.status}) failed: ${networkReason(err)}`, err);
  }
  return { status: res.status, body };
}

function networkReason(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${TOKEN_REQUEST_TIMEOUT_MS / 1000} s`;
  const cause = (err as { cause?: unknown }).cause;
  const code = (cause as { code?: unknown } | undefined)?.code;
  const causeText = cause instanceof Error ? cause.message : undefined;
  const base = errorMessage(err);
  if (causeText !== undefined) return `${base}: ${causeText}${typeof code === 'string' && !causeText.includes(code) ? ` (${code})` : ''}`;
  return base;
}

/** The token endpoint's answer: an access token, or a TokenError quoting the OAuth error. */
export function parseTokenAnswer(mailbox: string, url: string, answer: HttpAnswer): { accessToken: string; expiresInS: number | undefined; refreshToken: string | undefined } {
  let json: Record<string, unknown> | undefined;
  try {
    const parsed = JSON.parse(answer.body) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  const str = (k: string) => (typeof json?.[k] === 'string' ? (json[k] as string) : undefined);
  if (answer.status < 200 || answer.status > 299 || str('error') !== undefined) {
    const error = str('error');
    const description = str('error_description');
    const said = error !== undefined
      ? `${error}${description === undefined ? '' : `: ${oneLine(description)}`}`
      : answer.body.trim() === '' ? 'an empty answer' : `"${oneLine(answer.body).slice(0, 200)}"`;
    throw fail(mailbox, 'token endpoint answer', `${url} refused the request (HTTP ${answer.status}): ${said}${hint(error)}`, undefined, error === undefined ? undefined : said);
  }
  if (json === undefined) throw fail(mailbox, 'token endpoint answer', `${url} answered HTTP ${answer.status} without a JSON object`);
  const accessToken = str('access_token');
  if (accessToken === undefined || accessToken === '') throw fail(mailbox, 'token endpoint answer', `${url} answered without an access_token`);
  const type = str('token_type');
  if (type !== undefined && type.toLowerCase() !== 'bearer') throw fail(mailbox, 'token endpoint answer', `${url} issued a "${type}" token; mail servers take Bearer tokens`);
  const rawExpiry = json.expires_in;
  const expires = typeof rawExpiry === 'number' ? rawExpiry : typeof rawExpiry === 'string' ? Number(rawExpiry) : Number.NaN;
  return {
    accessToken,
    expiresInS: Number.isFinite(expires) && expires > 0 ? expires : undefined,
    refreshToken: str('refresh_token') || undefined,
  };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function hint(error: string | undefined): string {
  switch (error) {
    case 'invalid_client':
      return ' (check clientId and the client secret, and that the secret has not expired)';
    case 'invalid_grant':
      return ' (the refresh token was revoked or expired: obtain a new one and put it into the config)';
    case 'invalid_scope':
      return ' (check scope; Microsoft 365 app-only access uses https://outlook.office365.com/.default)';
    case 'unauthorized_client':
      return ' (the application may not use this grant type)';
    default:
      return '';
  }
}

// ---- cache -------------------------------------------------------------------------------------

function readCache(db: Db | undefined, mailbox: string): CachedToken | undefined {
  if (db === undefined) return undefined;
  try {
    return db.prepare('SELECT * FROM oauth_tokens WHERE mailbox = ?').get(mailbox) as CachedToken | undefined;
  } catch (err) {
    throw new TokenError(`OAuth2 token for mailbox ${mailbox}: cannot read the token cache: ${errorMessage(err)}`, { mailbox, cause: err });
  }
}

function writeCache(db: Db | undefined, row: CachedToken): void {
  if (db === undefined) return;
  try {
    db.prepare(
      `INSERT INTO oauth_tokens (mailbox, access_token, expires_at, refreshed_at, refresh_token, source)
       VALUES (@mailbox, @access_token, @expires_at, @refreshed_at, @refresh_token, @source)
       ON CONFLICT(mailbox) DO UPDATE SET access_token = excluded.access_token, expires_at = excluded.expires_at,
         refreshed_at = excluded.refreshed_at, refresh_token = excluded.refresh_token, source = excluded.source`,
    ).run(row);
  } catch (err) {
    if (err instanceof MailpollError) throw err;
    // The token is good; a rotated refresh token that cannot be kept would break the next run, so say so.
    throw new TokenError(`OAuth2 token for mailbox ${row.mailbox}: cannot write the token cache: ${errorMessage(err)}`, { mailbox: row.mailbox, cause: err });
  }
}
