/**
 * A private, throw-away Dovecot 2.3 for integration tests (see DESIGN.md, "Testing on real parts").
 *
 * One server per test file:
 *
 *   let dovecot: DovecotServer;
 *   beforeAll(async () => { dovecot = await startDovecot(); await dovecot.addUser('alice', 'pw'); });
 *   afterAll(async () => { await dovecot?.stop(); });
 *
 * Every server has its own temp dir (config, base_dir, state_dir, log, Maildirs, certificates),
 * its own free ports on 127.0.0.2 and its own instance_name, so test files running in parallel
 * worker processes never share anything. It listens on 127.0.0.2 so that a client (whose source
 * address is 127.0.0.1) is not "secured" by address: `disable_plaintext_auth = yes` really refuses
 * LOGIN/USER+PASS before STARTTLS/STLS.
 *
 * Mail is accessed as the unprivileged system user `mailpolltest` (created if missing; Dovecot
 * refuses uid 0 for mail). The harness itself must run as root.
 *
 * Options: `users` to add before start; `authFailureDelay`; `authPenalty` (off by default: see
 * below); `extraConfig`, appended verbatim, e.g. for OAuth2 (verified with 2.3.19):
 *
 *   extraConfig: `auth_mechanisms = plain login xoauth2 oauthbearer
 *   passdb {
 *     driver = oauth2
 *     mechanisms = xoauth2 oauthbearer
 *     args = /path/to/oauth2.conf.ext
 *   }`
 *
 * (the built-in passwd-file passdb is limited to `mechanisms = plain login`).
 *
 * Timing facts: a failed login takes ~0.5 s whatever auth_failure_delay says (Dovecot flushes
 * failures every 500 ms). Dovecot's per-client-IP auth penalty (every login from 127.0.0.1 after
 * failed ones waits 2..15 s) is disabled unless `authPenalty: true`; restart() also resets it.
 *
 * Clean-up: stop() is idempotent; a process 'exit' hook sends SIGTERM to every master still
 * running; and a small detached shell watchdog stops the master and removes the temp dir if the
 * test process dies without either (SIGKILL, SIGTERM from a runner).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import {
  chmod, chown, mkdir, mkdtemp, readFile, readdir, rename, rm, utimes, writeFile,
} from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCertificates } from './certs.js';

export interface DovecotPorts {
  imap: number;   // plaintext + STARTTLS
  imaps: number;  // implicit TLS
  pop3: number;   // plaintext + STLS
  pop3s: number;  // implicit TLS
}

export interface MaildirEntry {
  /** Unique part of the file name (before ":2,"): what deliver() returned; stable across flag changes. */
  name: string;
  /** Maildir flags of a file in cur/ ("" in new/), e.g. "S" for \Seen, "T" for \Deleted (sorted). */
  flags: string;
  dir: 'new' | 'cur';
  /** The full file name on disk. */
  file: string;
}

export interface DeliverOptions {
  /** IMAP folder name, "/" as hierarchy separator; default INBOX. Created (Maildir++ ".Name") if needed. */
  folder?: string;
  /** Becomes the file's mtime, which Dovecot reports as INTERNALDATE. */
  mtime?: Date;
  /** If given (even ""), the file goes into cur/ as "NAME:2,FLAGS" instead of new/. Letters only. */
  flags?: string;
  /**
   * Name the file as Dovecot's own deliveries (LDA, LMTP, IMAP APPEND) do: with its size and its
   * size with CRLF line ends, ",S=...,W=...". Dovecot then answers RFC822.SIZE from the name,
   * instead of reading the whole message to count its line ends.
   */
  sizes?: boolean;
}

export interface DovecotServer {
  /** '127.0.0.2' */
  host: string;
  ports: DovecotPorts;
  /** PEM file of the CA that signed the server certificate (SAN IP:127.0.0.2, IP:127.0.0.1, DNS:localhost). */
  caFile: string;
  /** The temp dir holding everything of this server; removed by stop(). */
  dir: string;
  /** The generated dovecot.conf. */
  confFile: string;
  /** Dovecot's log file (log_path). */
  logFile: string;
  /** uid/gid all mail is accessed as. */
  mailUid: number;
  mailGid: number;
  /**
   * Adds a passwd-file user and creates its Maildir; may be called after start (usable at once).
   * Calling it again for the same user changes the password; that waits up to a second.
   */
  addUser(name: string, password: string): Promise<void>;
  /** Writes `raw` byte for byte into the user's Maildir (tmp/ then rename). Returns the unique file name. */
  deliver(user: string, raw: Buffer, opts?: DeliverOptions): Promise<string>;
  /** What is on disk now in new/ and cur/ of the folder ([] if the folder does not exist), sorted by name. */
  listMaildir(user: string, folder?: string): Promise<MaildirEntry[]>;
  /** Absolute path of a folder's Maildir directory (INBOX = the Maildir root). */
  maildirPath(user: string, folder?: string): string;
  /** Last lines of the Dovecot log, for failure messages. */
  logTail(lines?: number): Promise<string>;
  /** Stops this Dovecot, waits until its ports are closed, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Stops and starts the same Dovecot again: same ports, config, users and mail. */
  restart(): Promise<void>;
}

export interface StartDovecotOptions {
  /** auth_failure_delay in seconds (default 0). */
  authFailureDelay?: number;
  /** Appended verbatim to the generated dovecot.conf (e.g. extra settings for one test file). */
  extraConfig?: string;
  /** Users (name -> password) to add before Dovecot starts (same as addUser() afterwards). */
  users?: Record<string, string>;
  /**
   * Keep Dovecot's per-client-IP auth penalty (default false: disabled). With it, every login from
   * 127.0.0.1 after failed ones waits up to 15 s. Failed logins still take ~0.5 s either way.
   */
  authPenalty?: boolean;
}

export const DOVECOT_BIN = '/usr/sbin/dovecot';
const DOVECOT_LIBEXEC = '/usr/lib/dovecot';
const DH_FILE = '/usr/share/dovecot/dh.pem';
export const DOVECOT_HOST = '127.0.0.2';
export const MAIL_USER = 'mailpolltest';
const START_TIMEOUT_MS = 10_000;
/** Child processes that access mail: stop() lets them finish before killing the master. */
const MAIL_PROCESSES = new Set(['imap', 'pop3', 'imap-hibernate', 'indexer-worker', 'lmtp', 'doveadm-server']);
const STOP_TIMEOUT_MS = 10_000;

/** Whether Dovecot (master, imap and pop3) is installed, so tests can fail with a clear message. */
export function dovecotAvailable(): boolean {
  return existsSync(DOVECOT_BIN)
    && existsSync(join(DOVECOT_LIBEXEC, 'imap'))
    && existsSync(join(DOVECOT_LIBEXEC, 'pop3'));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// ports

function canConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Connects, reads the first line; true if it starts with `prefix`. Then says goodbye politely. */
function greets(host: string, port: number, prefix: string, bye: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let buffer = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.on('error', () => {});
      if (ok) socket.end(bye); else socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.includes('\n')) done(buffer.startsWith(prefix));
    });
    socket.once('error', () => done(false));
    socket.once('end', () => done(false));
  });
}

/** Resolves once host:port accepts a TCP connection; rejects after timeoutMs. */
export async function waitForPort(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canConnect(host, port, Math.min(1000, Math.max(50, deadline - Date.now())))) return;
    if (Date.now() >= deadline) throw new Error(`${host}:${port} did not accept connections within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Resolves once host:port refuses TCP connections; rejects after timeoutMs. */
export async function waitForPortClosed(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await canConnect(host, port, 500))) return;
    if (Date.now() >= deadline) throw new Error(`${host}:${port} still accepts connections after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** `count` distinct ports that were free on `host` a moment ago (bind port 0, read, close). */
export async function findFreePorts(count: number, host = DOVECOT_HOST): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: 0, host, exclusive: true }, () => resolve());
      });
    }
    return servers.map((s) => {
      const address = s.address();
      if (address === null || typeof address === 'string') throw new Error('unexpected server address');
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
      if (s.listening) s.close(() => resolve()); else resolve();
    })));
  }
}

// ---------------------------------------------------------------------------------------------
// the unprivileged mail user

interface Ids { uid: number; gid: number }
let mailUserPromise: Promise<Ids> | undefined;

async function lookupUser(name: string): Promise<Ids | undefined> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields.length >= 4) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  return undefined;
}

function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, output: `${String(stdout)}${String(stderr)}${err && code === -1 ? err.message : ''}` });
    });
  });
}

/** uid/gid of MAIL_USER, creating the system user if missing (safe when workers race to create it). */
export function ensureMailUser(): Promise<Ids> {
  mailUserPromise ??= (async () => {
    const useradd = existsSync('/usr/sbin/useradd') ? '/usr/sbin/useradd' : 'useradd';
    let last = '';
    for (let attempt = 0; attempt < 30; attempt++) {
      const ids = await lookupUser(MAIL_USER);
      if (ids !== undefined) {
        if (ids.uid === 0 || ids.gid === 0) throw new Error(`${MAIL_USER} must not have uid/gid 0`);
        return ids;
      }
      const r = await run(useradd, [
        '--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent',
        '--shell', '/usr/sbin/nologin', '--comment', 'mailpoll integration tests', MAIL_USER,
      ]);
      last = r.output;
      // 0 created; 9 = created meanwhile by another worker; 10 = /etc/passwd locked by another worker.
      if (r.code !== 0 && r.code !== 9 && r.code !== 10) break;
      if (r.code !== 0) await sleep(50 + Math.floor(Math.random() * 100));
    }
    throw new Error(`cannot create the mail user ${MAIL_USER} with useradd: ${last}`);
  })();
  mailUserPromise.catch(() => { mailUserPromise = undefined; });
  return mailUserPromise;
}

// ---------------------------------------------------------------------------------------------
// clean-up safety nets

interface LiveServer { killNow(): void }
const LIVE_KEY = Symbol.for('mailpoll.test.dovecot.live');
type GlobalWithLive = typeof globalThis & { [LIVE_KEY]?: Set<LiveServer> };

function liveServers(): Set<LiveServer> {
  const g = globalThis as GlobalWithLive;
  let live = g[LIVE_KEY];
  if (live === undefined) {
    live = new Set();
    g[LIVE_KEY] = live;
    const set = live;
    process.on('exit', () => {
      for (const server of set) server.killNow();
    });
  }
  return live;
}

// Runs detached, its stdin a pipe from the test process. stop() writes a line: nothing to do.
// EOF means the test process died without stop(): stop the master whose pid is in $3 (only if its
// command line names our config $1), then remove the temp dir $2.
const WATCHDOG = `
conf=$1 dir=$2 pidfile=$3
if read -r line; then exit 0; fi
[ -e "$conf" ] || exit 0
pid=$(cat "$pidfile" 2>/dev/null || true)
alive() { [ -n "$pid" ] && grep -qF -- "$conf" "/proc/$pid/cmdline" 2>/dev/null; }
if alive; then
  kill -TERM "$pid" 2>/dev/null
  i=0
  while [ $i -lt 40 ] && alive; do sleep 0.25; i=$((i+1)); done
  alive && kill -KILL "$pid" 2>/dev/null
  sleep 1
fi
rm -rf "$dir"
`;

/** Live (non-zombie) child processes of `pid`, from /proc. */
async function childrenOf(pid: number): Promise<{ pid: number; comm: string }[]> {
  const found: { pid: number; comm: string }[] = [];
  for (const entry of await readdirOrEmpty('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    let text: string;
    try {
      text = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
    const close = text.lastIndexOf(')');
    const [state, ppid] = text.slice(close + 2).split(' ');
    if (Number(ppid) === pid && state !== 'Z' && state !== 'X') {
      found.push({ pid: Number(entry), comm: text.slice(text.indexOf('(') + 1, close) });
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// config

interface ConfParams {
  dir: string;
  instanceName: string;
  ports: DovecotPorts;
  ids: Ids;
  certFile: string;
  keyFile: string;
  usersDir: string;
  authPenalty: boolean;
  authFailureDelay: number;
  extraConfig: string;
}

export function renderDovecotConf(p: ConfParams): string {
  return `# Generated by test/support/dovecot.ts for one test run. Includes nothing from /etc/dovecot.
instance_name = ${p.instanceName}
base_dir = ${p.dir}/run
state_dir = ${p.dir}/state
log_path = ${p.dir}/dovecot.log
info_log_path = ${p.dir}/dovecot.log
debug_log_path = ${p.dir}/dovecot.log
protocols = imap pop3
listen = ${DOVECOT_HOST}
shutdown_clients = yes

default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = ${p.ids.uid}
last_valid_uid = ${p.ids.uid}
first_valid_gid = ${p.ids.gid}
last_valid_gid = ${p.ids.gid}

ssl = yes
ssl_cert = <${p.certFile}
ssl_key = <${p.keyFile}
ssl_dh = <${DH_FILE}
ssl_min_protocol = TLSv1.2

disable_plaintext_auth = yes
login_trusted_networks =
auth_mechanisms = plain login
auth_failure_delay = ${p.authFailureDelay} secs
auth_verbose = yes
login_greeting = mailpoll test Dovecot ready.

# One file per user: see addUser() in test/support/dovecot.ts. The mechanisms filter keeps
# passwords away from any passdb added through extraConfig (e.g. oauth2) and tokens away from here.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${p.usersDir}/%u
  mechanisms = plain login
}
userdb {
  driver = passwd-file
  args = username_format=%u ${p.usersDir}/%u
}

mail_location = maildir:~/Maildir
mail_fsync = never
pop3_uidl_format = %g
namespace inbox {
  inbox = yes
  prefix =
  separator = /
}

protocol imap {
  mail_max_userip_connections = 50
}
protocol pop3 {
  mail_max_userip_connections = 50
}

service imap-login {
  inet_listener imap {
    port = ${p.ports.imap}
  }
  inet_listener imaps {
    port = ${p.ports.imaps}
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = ${p.ports.pop3}
  }
  inet_listener pop3s {
    port = ${p.ports.pop3s}
    ssl = yes
  }
}
${p.authPenalty ? '' : `# No auth penalty: the auth process (running as dovecot) cannot connect to anvil-auth-penalty,
# so Dovecot disables the per-IP penalty (up to 15 s before each login after failed ones).
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`}# No stats: on shutdown, freshly started login processes otherwise wait 5 s for the stats handshake.
stats_writer_socket_path =
${p.extraConfig}
`;
}

// ---------------------------------------------------------------------------------------------
// Maildir helpers

const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]*$/;
let fileCounter = 0;
let lastMicros = 0;

/** Maildir unique name "SECS.MusecsPpidQnRrand.mailpoll": strictly increasing within this process. */
function uniqueName(): string {
  lastMicros = Math.max(Date.now() * 1000, lastMicros + 1);
  const secs = Math.floor(lastMicros / 1_000_000);
  const usecs = lastMicros % 1_000_000;
  fileCounter += 1;
  return `${secs}.M${usecs}P${process.pid}Q${fileCounter}R${randomBytes(4).toString('hex')}.mailpoll`;
}

/** The size of `raw` with every bare LF counted as CRLF (RFC 3501 section 2.3.4, RFC822.SIZE). */
function crlfSize(raw: Buffer): number {
  let size = raw.length;
  for (let lf = raw.indexOf(0x0a); lf !== -1; lf = raw.indexOf(0x0a, lf + 1)) if (lf === 0 || raw[lf - 1] !== 0x0d) size += 1;
  return size;
}

function normaliseFlags(flags: string): string {
  if (!/^[A-Za-z]*$/.test(flags)) throw new Error(`Maildir flags must be letters, got ${JSON.stringify(flags)}`);
  return [...new Set(flags.split(''))].sort().join('');
}

function folderDirName(folder: string): string {
  if (folder.length === 0 || /[.\0\r\n\\]/.test(folder) || folder.startsWith('/') || folder.endsWith('/')
    || folder.includes('//') || !/^[\x20-\x7e]+$/.test(folder)) {
    throw new Error(`unsupported test folder name ${JSON.stringify(folder)} (ASCII, "/" separated, no ".")`);
  }
  return `.${folder.split('/').join('.')}`;
}

function isInbox(folder: string | undefined): boolean {
  return folder === undefined || folder.toUpperCase() === 'INBOX';
}

async function readdirOrEmpty(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// the server

class PrivateDovecot implements DovecotServer, LiveServer {
  readonly host = DOVECOT_HOST;
  readonly confFile: string;
  readonly logFile: string;
  readonly mailUid: number;
  readonly mailGid: number;
  caFile = '';
  private readonly users = new Map<string, string>();
  private readonly userFileMtimes = new Map<string, number>();
  private readonly usersDir: string;
  private readonly stderrFile: string;
  private readonly pidFile: string;
  private child: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private stopping: Promise<void> | undefined;
  private userWrites: Promise<void> = Promise.resolve();
  /** Set once Dovecot has been started: from then on a password change waits until Dovecot sees it. */
  launched = false;

  constructor(
    readonly dir: string,
    public ports: DovecotPorts,
    ids: Ids,
    private readonly opts: StartDovecotOptions,
  ) {
    this.mailUid = ids.uid;
    this.mailGid = ids.gid;
    this.confFile = join(dir, 'dovecot.conf');
    this.logFile = join(dir, 'dovecot.log');
    this.usersDir = join(dir, 'users.d');
    this.stderrFile = join(dir, 'dovecot.stderr');
    this.pidFile = join(dir, 'run', 'master.pid');
  }

  async writeConfig(certFile: string, keyFile: string): Promise<void> {
    await writeFile(this.confFile, renderDovecotConf({
      dir: this.dir,
      instanceName: `mailpoll-test-${this.dir.slice(-6).replace(/[^A-Za-z0-9]/g, 'x')}-${process.pid}`,
      ports: this.ports,
      ids: { uid: this.mailUid, gid: this.mailGid },
      certFile,
      keyFile,
      usersDir: this.usersDir,
      authPenalty: this.opts.authPenalty ?? false,
      authFailureDelay: this.opts.authFailureDelay ?? 0,
      extraConfig: this.opts.extraConfig ?? '',
    }), { mode: 0o644 });
  }

  async logTail(lines = 40): Promise<string> {
    const parts: string[] = [];
    for (const file of [this.stderrFile, this.logFile]) {
      try {
        const text = (await readFile(file, 'utf8')).trimEnd();
        if (text.length > 0) parts.push(text.split('\n').slice(-lines).join('\n'));
      } catch {
        // not written yet
      }
    }
    return parts.join('\n');
  }

  /** Spawns `dovecot -F -c CONF` (foreground: our own child, so it is reaped) and waits for the ports. */
  async launch(): Promise<void> {
    const errFd = openSync(this.stderrFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(DOVECOT_BIN, ['-F', '-c', this.confFile], { stdio: ['ignore', errFd, errFd] });
    } finally {
      closeSync(errFd);
    }
    child.unref();
    child.on('error', () => {});
    this.child = child;
    this.launched = true;
    liveServers().add(this);

    const deadline = Date.now() + START_TIMEOUT_MS;
    const ports = Object.values(this.ports);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`dovecot exited during start (${child.exitCode ?? child.signalCode})`);
      }
      // TLS ports: accepting is enough. Plain ports: the greeting proves login, config and auth are up.
      const open = await Promise.all([
        canConnect(this.host, this.ports.imaps, 500),
        canConnect(this.host, this.ports.pop3s, 500),
        greets(this.host, this.ports.imap, '* OK', 'z LOGOUT\r\n', 1000),
        greets(this.host, this.ports.pop3, '+OK', 'QUIT\r\n', 1000),
      ]);
      if (open.every(Boolean) && (await this.pidFileMatches(child))) return;
      if (Date.now() >= deadline) {
        throw new Error(`dovecot did not open ports ${ports.join(', ')} on ${this.host} within ${START_TIMEOUT_MS} ms`);
      }
      await sleep(50);
    }
  }

  private async pidFileMatches(child: ChildProcess): Promise<boolean> {
    try {
      return Number((await readFile(this.pidFile, 'utf8')).trim()) === child.pid;
    } catch {
      return false;
    }
  }

  startWatchdog(): void {
    const watchdog = spawn('/bin/sh', ['-c', WATCHDOG, 'mailpoll-dovecot-watchdog', this.confFile, this.dir, this.pidFile],
      { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    watchdog.on('error', () => {});
    watchdog.stdin?.on('error', () => {});
    (watchdog.stdin as Socket | null)?.unref();
    watchdog.unref();
    this.watchdog = watchdog;
  }

  killNow(): void {
    const child = this.child;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      try { child.kill('SIGTERM'); } catch { /* gone */ }
    }
  }

  /**
   * Stops the master, then (by default) waits until the ports are closed.
   * SIGTERM makes Dovecot close its listeners and stop its children at once, but the master then
   * often waits 5 more seconds (MAX_DIE_WAIT_MSECS): a login process still starting up when the
   * config process died blocks reading the config socket, whose listener the master holds; and
   * even with only its log process left it takes ~1 s. So once no mail process (imap, pop3) is
   * left, the master is killed; its remaining children exit when they notice it is gone.
   */
  async stopMaster(waitForPorts = true): Promise<void> {
    const child = this.child;
    if (child !== undefined && child.pid !== undefined) {
      const pid = child.pid;
      const hasExited = () => child.exitCode !== null || child.signalCode !== null;
      const exited = new Promise<void>((resolve) => {
        if (hasExited()) resolve(); else child.once('exit', () => resolve());
      });
      if (!hasExited()) child.kill('SIGTERM');
      const started = Date.now();
      let killed = false;
      while (!hasExited()) {
        const elapsed = Date.now() - started;
        if (!killed && (elapsed > STOP_TIMEOUT_MS
          || (elapsed > 150 && !(await childrenOf(pid)).some((c) => MAIL_PROCESSES.has(c.comm))))) {
          child.kill('SIGKILL');
          killed = true;
        }
        if (killed && Date.now() - started > STOP_TIMEOUT_MS + 5_000) break;
        await Promise.race([exited, sleep(50)]);
      }
      this.child = undefined;
      if (killed) await rm(this.pidFile, { force: true });
    }
    liveServers().delete(this);
    if (!waitForPorts) return;
    // Login processes hold inherited listening sockets until they notice the master is gone.
    await Promise.all(Object.values(this.ports).map((port) => waitForPortClosed(this.host, port, STOP_TIMEOUT_MS)));
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await this.stopMaster();
      } finally {
        this.watchdog?.stdin?.end('stopped\n');
        await rm(this.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      }
    })();
    return this.stopping;
  }

  async restart(): Promise<void> {
    if (this.stopping !== undefined) throw new Error('restart() after stop()');
    await this.stopMaster();
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.launch();
        return;
      } catch (err) {
        lastError = err;
        this.killNow();
        await this.stopMaster(false).catch(() => {});
        await sleep(200);
      }
    }
    throw new Error(`dovecot restart failed: ${(lastError as Error).message}\n--- dovecot log ---\n${await this.logTail()}`);
  }

  // ---- users and mail ----

  private home(user: string): string {
    return join(this.dir, 'mail', user);
  }

  maildirPath(user: string, folder?: string): string {
    const root = join(this.home(user), 'Maildir');
    return isInbox(folder) ? root : join(root, folderDirName(folder as string));
  }

  private async mkdirOwned(path: string): Promise<void> {
    try {
      await mkdir(path, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await chown(path, this.mailUid, this.mailGid);
  }

  private async ensureMaildir(path: string, subfolder: boolean): Promise<void> {
    await this.mkdirOwned(path);
    for (const sub of ['cur', 'new', 'tmp']) await this.mkdirOwned(join(path, sub));
    if (subfolder) {
      const marker = join(path, 'maildirfolder');
      if (!existsSync(marker)) {
        await writeFile(marker, '', { mode: 0o600 });
        await chown(marker, this.mailUid, this.mailGid);
      }
    }
  }

  addUser(name: string, password: string): Promise<void> {
    const job = this.userWrites.then(() => this.writeUser(name, password));
    this.userWrites = job.catch(() => {});
    return job;
  }

  /**
   * One passwd-file per user (users.d/%u): Dovecot 2.3 stats a passwd-file at most once per
   * wall-clock second and keeps serving its cached copy meanwhile, but a file it has not seen yet
   * (or saw missing: "missing passwd file" = unknown user) is read at once. So a new user can log
   * in immediately. Changing an existing user's password gives the file a new mtime (Dovecot
   * compares mtime in seconds and size) and waits for the next second, when Dovecot re-checks.
   */
  private async writeUser(name: string, password: string): Promise<void> {
    if (!USER_NAME.test(name) || name.length > 64) throw new Error(`unsupported test user name ${JSON.stringify(name)}`);
    if (/[:\0\r\n]/.test(password)) throw new Error('test passwords cannot contain ":", NUL, CR or LF (passwd-file)');
    await this.mkdirOwned(this.home(name));
    await this.ensureMaildir(this.maildirPath(name), false);
    const existed = this.users.has(name);
    this.users.set(name, password);
    const line = `${name}:{PLAIN}${password}:${this.mailUid}:${this.mailGid}::${this.home(name)}::\n`;
    const tmp = join(this.dir, `user-${name}.tmp`);
    await writeFile(tmp, line, { mode: 0o644 });
    const mtime = Math.max(Math.floor(Date.now() / 1000), (this.userFileMtimes.get(name) ?? 0) + 1);
    this.userFileMtimes.set(name, mtime);
    await utimes(tmp, mtime, mtime);
    await rename(tmp, join(this.usersDir, name)); // atomic: a lookup never sees half a file
    if (existed && this.launched) {
      await sleep((Math.floor(Date.now() / 1000) + 1) * 1000 + 20 - Date.now());
    }
  }

  private requireUser(user: string): void {
    if (!this.users.has(user)) throw new Error(`unknown test user ${JSON.stringify(user)}: call addUser() first`);
  }

  async deliver(user: string, raw: Buffer, opts: DeliverOptions = {}): Promise<string> {
    this.requireUser(user);
    const folderPath = this.maildirPath(user, opts.folder);
    await this.ensureMaildir(folderPath, !isInbox(opts.folder));
    const name = opts.sizes === true ? `${uniqueName()},S=${raw.length},W=${crlfSize(raw)}` : uniqueName();
    const tmpPath = join(folderPath, 'tmp', name);
    await writeFile(tmpPath, raw, { mode: 0o600, flag: 'wx' });
    await chown(tmpPath, this.mailUid, this.mailGid);
    if (opts.mtime !== undefined) await utimes(tmpPath, opts.mtime, opts.mtime);
    const target = opts.flags === undefined
      ? join(folderPath, 'new', name)
      : join(folderPath, 'cur', `${name}:2,${normaliseFlags(opts.flags)}`);
    await rename(tmpPath, target);
    return name;
  }

  async listMaildir(user: string, folder?: string): Promise<MaildirEntry[]> {
    const path = this.maildirPath(user, folder);
    const entries: MaildirEntry[] = [];
    for (const dir of ['new', 'cur'] as const) {
      for (const file of await readdirOrEmpty(join(path, dir))) {
        const colon = file.indexOf(':');
        const name = colon === -1 ? file : file.slice(0, colon);
        const info = colon === -1 ? '' : file.slice(colon + 1);
        const flags = info.startsWith('2,') ? info.slice(2) : '';
        entries.push({ name, flags, dir, file });
      }
    }
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

/** A temp base whose path is short and plain (unquoted in dovecot.conf, unix sockets < 108 bytes). */
function tempBase(): string {
  const base = tmpdir();
  return base.length <= 40 && /^[A-Za-z0-9/._-]+$/.test(base) ? base : '/tmp';
}

/** Starts a private Dovecot with IMAP(+STARTTLS), IMAPS, POP3(+STLS) and POP3S on 127.0.0.2. */
export async function startDovecot(opts: StartDovecotOptions = {}): Promise<DovecotServer> {
  if (!dovecotAvailable()) {
    throw new Error(`Dovecot is not installed (${DOVECOT_BIN}, ${DOVECOT_LIBEXEC}/imap, ${DOVECOT_LIBEXEC}/pop3): `
      + 'apt-get install dovecot-imapd dovecot-pop3d');
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('the Dovecot test harness must run as root (Dovecot drops privileges to the mail user)');
  }
  const ids = await ensureMailUser();
  const dir = await mkdtemp(join(tempBase(), 'mailpoll-dovecot-'));
  let server: PrivateDovecot | undefined;
  try {
    await chmod(dir, 0o755); // the mail user must be able to traverse it
    await mkdir(join(dir, 'mail'), { mode: 0o755 });
    await mkdir(join(dir, 'users.d'), { mode: 0o755 });
    const certs = await makeTestCertificates(join(dir, 'tls'));
    server = new PrivateDovecot(dir, { imap: 0, imaps: 0, pop3: 0, pop3s: 0 }, ids, opts);
    server.caFile = certs.caFile;
    for (const [name, password] of Object.entries(opts.users ?? {})) await server.addUser(name, password);

    // A port found free can be taken by someone else before Dovecot binds it: retry with new ports.
    let lastError: unknown;
    for (let attempt = 0; attempt < 4; attempt++) {
      const [imap, imaps, pop3, pop3s] = await findFreePorts(4);
      server.ports = { imap: imap!, imaps: imaps!, pop3: pop3!, pop3s: pop3s! };
      await server.writeConfig(certs.certFile, certs.keyFile);
      try {
        await server.launch();
        lastError = undefined;
        break;
      } catch (err) {
        lastError = err;
        server.killNow();
        await server.stopMaster(false).catch(() => {});
        if (!/Address already in use/i.test(await server.logTail(200))) break;
      }
    }
    if (lastError !== undefined) {
      throw new Error(`cannot start Dovecot: ${(lastError as Error).message}\n--- dovecot log (${dir}) ---\n${await server.logTail()}`);
    }
    server.startWatchdog();
    return server;
  } catch (err) {
    if (server !== undefined) {
      server.killNow();
      await server.stopMaster(false).catch(() => {});
    }
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}
