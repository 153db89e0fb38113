import type { Analyser } from '../parse/analyse-pool.js';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Config } from '../config/types.js';
import { resolveSecret } from '../config/secrets.js';
import { ConfigError, ConnectionError, errorMessage, SecretError } from '../errors.js';
import { dueMailboxes, runFetch } from '../fetch/run-fetch.js';
import type { MailboxSummary } from '../fetch/summary.js';
import { registerSecret, scrub, type Logger } from '../log.js';
import type { Db } from '../store/database.js';
import { acquireLease, LEASE_TTL_MS, leaseOwnerId, releaseLease, renewLease } from '../store/leases.js';
import type { StoreRules } from '../store/mail-store.js';
import { readMailboxMetrics } from '../store/metrics.js';
import { ApiKey, MIN_API_KEY_LENGTH } from './auth.js';
import { assessHealth } from './health.js';
import { formatAddress, type ListenAddress } from './listen.js';
import { PROMETHEUS_CONTENT_TYPE, renderMetrics } from './metrics.js';
import { clientAddress, FailureLimiter } from './rate-limit.js';

/**
 * `mailpoll daemon --listen ADDRESS:PORT`: the HTTP trigger, health and metrics.
 *
 *   POST /fetch[?mailbox=NAME...][&now=1]  runs a fetch as `mailpoll fetch` does (API key required)
 *   GET  /health                            200 when every mailbox is healthy, else 503 (JSON)
 *   GET  /metrics                           Prometheus text format
 *
 * /health and /metrics need no key on a loopback address (what a local Prometheus, node_exporter
 * or monitoring agent expects), and need it like /fetch when the daemon listens beyond loopback.
 * Neither ever shows an error text, a host, a user name or a secret: mailbox names, times, counts
 * and error codes only.
 */
export interface HttpServerOptions {
  listen: ListenAddress;
  config: Config;
  db: Db;
  log: Logger;
  apiKey: ApiKey;
  /** Mailboxes a triggered fetch polls at once (the daemon's --concurrency). */
  concurrency: number;
  rules: StoreRules;
  /** Where messages are parsed; the daemon's shared pool. */
  analyser?: Analyser;
  /** The daemon's shutdown: no new request is accepted, a fetch in flight finishes its message in hand. */
  signal: AbortSignal;
  /** Called after each triggered run that polled something (the dead-man ping). */
  onRun?: (summaries: readonly MailboxSummary[]) => void;
  limiter?: FailureLimiter;
}

export interface HttpServer {
  host: string;
  /** The port bound (the one the system chose for --listen HOST:0). */
  port: number;
  /** Stops accepting, waits for requests in flight (a triggered fetch finishes), closes every connection. */
  close(): Promise<void>;
}

/** The key from `http:` in the config, resolved once at startup; a problem stops the daemon from starting. */
export async function loadApiKey(config: Config): Promise<ApiKey> {
  const problem = (message: string) =>
    new ConfigError([{ file: config.file, line: undefined, column: undefined, field: 'http.apiKey', message }]);
  if (config.http === undefined) {
    throw problem('--listen needs an API key: add `http: { apiKey: ${MAILPOLL_API_KEY} }` (or apiKeyFile, apiKeyCommand) to the config');
  }
  let key: string;
  try {
    key = await resolveSecret(config.http.apiKey, 'http');
  } catch (err) {
    // resolveSecret speaks of mailbox passwords; say which setting this is.
    if (err instanceof SecretError) throw new SecretError(`http.apiKey: ${err.message.replace(/\bpassword(File|Command)\b/g, 'apiKey$1')}`);
    throw err;
  }
  key = key.trim();
  registerSecret(key);
  if (key.length < MIN_API_KEY_LENGTH) {
    throw problem(`the API key is shorter than ${MIN_API_KEY_LENGTH} characters; use a long random one, e.g. from \`openssl rand -hex 32\``);
  }
  return new ApiKey(key);
}

type Route = 'fetch' | 'health' | 'metrics';
const ROUTES: Record<string, Route> = { '/fetch': 'fetch', '/health': 'health', '/metrics': 'metrics' };

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { config, db, log, listen, signal } = options;
  const limiter = options.limiter ?? new FailureLimiter();
  const active = new Set<Promise<void>>();

  const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    const handled: Promise<void> = handle(req, res)
      .catch((err: unknown) => {
        log.error({ err: scrub(errorMessage(err)) }, 'HTTP request failed unexpectedly');
        if (!res.headersSent) send(res, 500, { error: 'internal error; see the mailpoll log' });
        else res.destroy();
      })
      .finally(() => active.delete(handled));
    active.add(handled);
  });
  server.maxConnections = 128;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = Date.now();
    req.resume(); // a body is never read; drain it
    const address = clientAddress(req.socket.remoteAddress);
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://mailpoll.invalid');
    } catch {
      send(res, 400, { error: 'bad request' });
      return;
    }
    const done = (status: number, level: 'info' | 'debug' | 'warn' = 'info', extra: Record<string, unknown> = {}) =>
      log[level]({ method, path: url.pathname, status, address, ms: Date.now() - started, ...extra }, 'HTTP request');

    const route = ROUTES[url.pathname];
    if (route === undefined) {
      send(res, 404, { error: 'not found' });
      done(404, 'debug');
      return;
    }
    if (route === 'fetch' || !listen.loopback) {
      const admission = limiter.admit(address, Date.now());
      if (admission.blocked) {
        const seconds = Math.ceil(admission.retryAfterMs / 1000);
        send(res, 429, { error: 'too many failed attempts from this address; try again later' }, { 'Retry-After': String(seconds) });
        done(429, 'warn');
        return;
      }
      if (!options.apiKey.authorizes(req.headers)) {
        const delay = limiter.fail(address, Date.now());
        if (delay > 0) await sleep(delay);
        send(res, 401, { error: 'unauthorized' }, { 'WWW-Authenticate': 'Bearer realm="mailpoll"' });
        done(401, 'warn', { reason: 'missing or wrong API key' });
        return;
      }
    }

    const reading = method === 'GET' || method === 'HEAD';
    if (route === 'fetch' && method !== 'POST') {
      send(res, 405, { error: 'use POST /fetch (with wget: --post-data= or --method=POST)' }, { Allow: 'POST' });
      done(405, 'warn');
      return;
    }
    if (route !== 'fetch' && !reading) {
      send(res, 405, { error: `use GET /${route}` }, { Allow: 'GET, HEAD' });
      done(405, 'warn');
      return;
    }

    if (route === 'health') {
      const names = config.mailboxes.map((m) => m.name);
      const report = assessHealth(config.mailboxes, readMailboxMetrics(db, names), new Date());
      send(res, report.ok ? 200 : 503, report);
      done(report.ok ? 200 : 503, 'debug');
      return;
    }
    if (route === 'metrics') {
      sendText(res, 200, renderMetrics(db, config.mailboxes, { process: true }), PROMETHEUS_CONTENT_TYPE);
      done(200, 'debug');
      return;
    }
    const status = await triggerFetch(url.searchParams, res);
    done(status);
  };

  /** POST /fetch, after the key was accepted. Returns the status sent. */
  const triggerFetch = async (params: URLSearchParams, res: ServerResponse): Promise<number> => {
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      send(res, status, body, headers);
      return status;
    };
    for (const key of new Set(params.keys())) {
      if (key !== 'mailbox' && key !== 'now') return reply(400, { ok: false, error: `unknown parameter "${key}": use mailbox=NAME (repeatable) and now=1` });
    }
    const only = params.getAll('mailbox');
    const unknown = only.filter((name) => !config.mailboxes.some((m) => m.name === name));
    if (unknown.length > 0) return reply(400, { ok: false, error: `no mailbox named ${unknown.map((n) => JSON.stringify(n)).join(', ')}` });
    const now = flag(params.getAll('now'));
    if (now === undefined) return reply(400, { ok: false, error: 'now must be 1 or 0 (also true/false, yes/no)' });
    if (signal.aborted) return reply(503, { ok: false, error: 'the daemon is shutting down' });

    const due = dueMailboxes(config, db, { only, now });
    if (due.length === 0) return reply(200, { ok: true, mailboxes: [] });

    // All or nothing: every selected mailbox is leased before any is polled, under an owner of
    // its own (never the daemon's: a lease is re-entrant for its owner). A mailbox that anyone
    // (a cron fetch, the daemon's own poll, another trigger) is polling answers 409 and nothing
    // starts; the caller tries again later.
    const owner = leaseOwnerId();
    const held: string[] = [];
    const busy: { mailbox: string; heldBy: string; until: string }[] = [];
    for (const m of due) {
      const lease = acquireLease(db, m.name, owner);
      if (lease.acquired) held.push(m.name);
      else busy.push({ mailbox: m.name, heldBy: lease.owner, until: lease.expiresAt });
    }
    if (busy.length > 0) {
      for (const name of held) releaseLease(db, name, owner);
      log.info({ busy: busy.map((b) => b.mailbox) }, 'trigger refused: a selected mailbox is being polled by another run');
      return reply(409, { ok: false, error: `being polled by another run: ${busy.map((b) => b.mailbox).join(', ')}; nothing was started, try again later`, busy }, { 'Retry-After': '10' });
    }
    log.info({ mailboxes: held, now }, 'fetch triggered over HTTP');
    // runFetch renews each lease while it polls that mailbox; this keeps the ones still queued.
    const renew = setInterval(() => {
      for (const name of held) renewLease(db, name, owner);
    }, LEASE_TTL_MS / 4);
    let summaries: MailboxSummary[];
    try {
      summaries = await runFetch(due, db, { concurrency: options.concurrency, signal, owner, rules: options.rules, analyser: options.analyser }, log);
    } finally {
      clearInterval(renew);
      for (const name of held) releaseLease(db, name, owner);
    }
    options.onRun?.(summaries);
    // The same JSON as `mailpoll fetch --json`; 200 even when a mailbox failed (ok: false says so).
    return reply(200, { ok: summaries.every((s) => s.ok), mailboxes: summaries });
  };

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the address is in use' : err.code === 'EADDRNOTAVAIL' ? 'this machine has no such address' : (err.code ?? err.message);
      reject(new ConnectionError(`cannot listen on ${formatAddress(listen.host, listen.port)} (--listen): ${why}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ host: listen.host, port: listen.port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: scrub(errorMessage(err)) }, 'HTTP server error'));
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : listen.port;
  log.info({ host: listen.host, port, address: formatAddress(listen.host, port) }, 'HTTP trigger listening');
  if (!listen.loopback) {
    log.warn(
      { address: formatAddress(listen.host, port) },
      'the HTTP trigger listens beyond this machine: /health and /metrics require the API key too, and plain HTTP carries the key in clear text; put a TLS reverse proxy in front or listen on 127.0.0.1',
    );
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.allSettled([...active]);
      server.closeAllConnections();
      await closed;
      log.info('HTTP trigger closed');
    })());
  // On shutdown, stop accepting at once; requests in flight are waited for by close().
  const stopAccepting = () => {
    server.close();
    server.closeIdleConnections();
  };
  if (signal.aborted) stopAccepting();
  else signal.addEventListener('abort', stopAccepting, { once: true });

  return { host: listen.host, port, close };
}

function flag(values: string[]): boolean | undefined {
  const value = (values[values.length - 1] ?? '0').toLowerCase();
  if (['1', 'true', 'yes', ''].includes(value) && values.length > 0) return true;
  if (['0', 'false', 'no'].includes(value)) return false;
  return undefined;
}

const COMMON_HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendText(res, status, `${JSON.stringify(body, null, 2)}\n`, 'application/json; charset=utf-8', headers);
}

function sendText(res: ServerResponse, status: number, text: string, contentType: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { ...COMMON_HEADERS, ...headers, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
