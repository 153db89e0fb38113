/**
 * `npm run bench`: how fast the built `mailpoll fetch` is, measured as a whole process the way cron
 * runs it, against a private Dovecot on 127.0.0.2 (test/support/dovecot.ts; needs root, as the tests).
 *
 *   npm run bench                  1000 messages, 3 runs per scenario, median reported
 *   npm run bench -- --large       also 5000 messages
 *   npm run bench -- --runs 5      runs per throughput scenario
 *   npm run bench -- --quick       smoke test: 100 messages, 1 run, smaller mailboxes and attachment
 *   npm run bench -- --profile     also one CPU-profiled IMAPS and POP3S run (not timed), top self time
 *   npm run bench -- --seed 7      another deterministic mailbox (scripts/bench-mail.ts)
 *   npm run bench -- --only imap,large   only these scenarios (imap, pop3, idle, due, large)
 *   npm run bench -- --generate-only   print the generated mix and stop (no server, no root)
 *
 * Every measured run gets a fresh mailbox (a new Dovecot user, filled and indexed before the clock
 * starts), a fresh config and a fresh database; the whole `node bin/mailpoll.js fetch --now --json`
 * process is timed from spawn to exit. Mailboxes use mailpoll's defaults for what happens after a
 * fetch: IMAP marks \Seen, POP3 keeps. A run whose summary or database does not hold every message
 * is an error, not a number. Peak RSS of the child comes from GNU time (`%M`, from wait4), else
 * from polling /proc/PID/status VmHWM every 10 ms.
 *
 * Results: a table on stdout, JSON in bench-results/bench-<timestamp>.json and bench-results/latest.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dovecotAvailable, startDovecot, type DovecotServer } from '../test/support/dovecot.js';
import { BIN, query, REPO_ROOT, writeConfig } from '../test/support/mailpoll.js';
import { bareSession } from './bench-bare.js';
import { BenchMailGenerator, largeAttachmentMessage, smallPlainMessage, type MixStats } from './bench-mail.js';

// ---------------------------------------------------------------------------------------------
// options

interface Options {
  runs: number;
  large: boolean;
  quick: boolean;
  profile: boolean;
  seed: number;
  generateOnly: boolean;
  only: ReadonlySet<Scenario>;
}

const SCENARIOS = ['imap', 'pop3', 'idle', 'due', 'large'] as const;
type Scenario = (typeof SCENARIOS)[number];

const USAGE = `usage: npm run bench -- [--runs N] [--large] [--quick] [--profile] [--seed N] [--only ${SCENARIOS.join(',')}] [--generate-only]`;

function parseOptions(argv: readonly string[]): Options {
  const o: Options = { runs: 3, large: false, quick: false, profile: false, seed: 1, generateOnly: false, only: new Set(SCENARIOS) };
  let runsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) fail(`${arg} needs a whole number of at least 1`);
      return v;
    };
    if (arg === '--runs') { o.runs = value(); runsGiven = true; }
    else if (arg === '--seed') o.seed = value();
    else if (arg === '--large') o.large = true;
    else if (arg === '--quick') o.quick = true;
    else if (arg === '--profile') o.profile = true;
    else if (arg === '--generate-only') o.generateOnly = true;
    else if (arg === '--only') {
      const names = (argv[++i] ?? '').split(',').filter((n) => n !== '');
      const unknown = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
      if (names.length === 0 || unknown.length > 0) fail(`--only takes a list of ${SCENARIOS.join(', ')}`);
      o.only = new Set(names as Scenario[]);
    }
    else if (arg === '--help' || arg === '-h') { console.log(USAGE); process.exit(0); }
    else fail(`unknown option ${arg}\n${USAGE}`);
  }
  if (o.quick && !runsGiven) o.runs = 1;
  return o;
}

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

const opts = parseOptions(process.argv.slice(2));
/** Scenario sizes: the full bench, or the smoke test. */
const plan = opts.quick
  ? { counts: [100], idleSizes: [100, 1000], idleRepeats: 2, dueRepeats: 3, largeBytes: 5 * 1024 * 1024 }
  : { counts: opts.large ? [1000, 5000] : [1000], idleSizes: [100, 10_000], idleRepeats: Math.max(9, opts.runs), dueRepeats: 10, largeBytes: 50 * 1024 * 1024 };

// ---------------------------------------------------------------------------------------------
// small helpers

const PASSWORD = 'bench-password';
const MAILBOX = 'bench';

function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;
const mb = (bytes: number): number => bytes / 1e6;
const fmtMs = (ms: number): string => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`);
const fmtRss = (kb: number | undefined): string => (kb === undefined ? 'n/a' : `${(kb / 1024).toFixed(0)} MB`);

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// running the CLI as a whole process

const GNU_TIME = '/usr/bin/time';
const hasGnuTime = ((): boolean => {
  if (!existsSync(GNU_TIME)) return false;
  const r = spawnSync(GNU_TIME, ['-f', '%M', 'true'], { encoding: 'utf8' });
  return r.status === 0 && /^\d+\s*$/.test(r.stderr.trim().split('\n').pop() ?? '');
})();

interface ChildResult {
  wallMs: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderrTail: string;
  /** Peak resident set size of the child, KB. */
  maxRssKb: number | undefined;
  /** CPU seconds of the child (GNU time only). */
  userS: number | undefined;
  sysS: number | undefined;
}

let current: ChildProcess | undefined;
let workDir = '';

/**
 * Spawns `node ARGS` and times it from spawn to exit. With `measure`, it runs under GNU time
 * (peak RSS and CPU from wait4; the wrapper adds about a millisecond), else /proc polling.
 */
function runNode(args: readonly string[], o: { measure: boolean; timeoutMs?: number }): Promise<ChildResult> {
  const useTime = o.measure && hasGnuTime;
  const timeFile = join(workDir, `time-${process.hrtime.bigint()}.txt`);
  const errFile = join(workDir, `stderr-${process.hrtime.bigint()}.txt`);
  const errFd = openSync(errFile, 'w');
  const env = { ...process.env, MAILPOLL_CONFIG: undefined, NODE_OPTIONS: undefined };
  const [cmd, argv] = useTime
    ? [GNU_TIME, ['-f', '%M %U %S', '-o', timeFile, process.execPath, ...args]]
    : [process.execPath, [...args]];
  return new Promise((resolve, reject) => {
    let stdout = '';
    let peakKb: number | undefined;
    const started = performance.now();
    let wallMs = 0;
    const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', errFd] });
    closeSync(errFd);
    current = child;
    // Fallback without GNU time: VmHWM is the kernel's own high-water mark, read until exit.
    const poll = o.measure && !useTime
      ? setInterval(() => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (m) peakKb = Math.max(peakKb ?? 0, Number(m[1]));
        } catch { /* gone */ }
      }, 10)
      : undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 600_000);
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('exit', () => { wallMs = performance.now() - started; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (poll) clearInterval(poll);
      current = undefined;
      let maxRssKb = peakKb;
      let userS: number | undefined;
      let sysS: number | undefined;
      if (useTime) {
        const last = (existsSync(timeFile) ? readFileSync(timeFile, 'utf8') : '').trim().split('\n').pop() ?? '';
        const m = /^(\d+) ([\d.]+) ([\d.]+)$/.exec(last);
        if (m) { maxRssKb = Number(m[1]); userS = Number(m[2]); sysS = Number(m[3]); }
        rmSync(timeFile, { force: true });
      }
      const stderr = readFileSync(errFile, 'utf8');
      rmSync(errFile, { force: true });
      resolve({ wallMs, code, signal, stdout, stderrTail: stderr.split('\n').slice(-15).join('\n'), maxRssKb, userS, sysS });
    });
  });
}

interface FetchSummary {
  ok: boolean;
  mailboxes: { mailbox: string; ok: boolean; stored: number; fetched: number; duplicates: number; oversize: number; messageFailures: number; quarantined: number; bytes: number; error?: string }[];
}

/** Checks exit code, the JSON summary and the database; throws when a single message is missing. */
function verify(r: ChildResult, label: string, db: string, expectFetched: number, expectTotal: number): FetchSummary['mailboxes'][number] {
  const context = () => `\n--- exit ${r.code ?? r.signal}; stdout ---\n${r.stdout.slice(0, 2000)}\n--- stderr (tail) ---\n${r.stderrTail}`;
  if (r.code !== 0) throw new Error(`${label}: mailpoll exited with ${r.code ?? r.signal}${context()}`);
  let summary: FetchSummary;
  try {
    summary = JSON.parse(r.stdout) as FetchSummary;
  } catch {
    throw new Error(`${label}: the output is not the JSON summary${context()}`);
  }
  const m = summary.mailboxes[0];
  if (!summary.ok || m === undefined || !m.ok || m.fetched !== expectFetched || m.stored !== expectFetched
    || m.duplicates !== 0 || m.oversize !== 0 || m.messageFailures !== 0 || m.quarantined !== 0) {
    throw new Error(`${label}: expected ${expectFetched} fetched and stored, got ${JSON.stringify(m ?? summary)}${context()}`);
  }
  const [row] = query<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM messages WHERE mailbox = ?', MAILBOX);
  if (row?.n !== expectTotal) throw new Error(`${label}: the database holds ${row?.n ?? 0} messages, expected ${expectTotal}`);
  return m;
}

// ---------------------------------------------------------------------------------------------
// mailboxes

let server!: DovecotServer;
let userCounter = 0;
let indexWarning = false;

interface Mailbox { user: string; dir: string; config: string; db: string; bytes: number }

/** A new Dovecot user filled with `count` messages from `make`, indexed, and its config. */
async function newMailbox(protocol: 'imap' | 'pop3', count: number, make: (i: number) => Buffer): Promise<Mailbox> {
  const user = `bench${++userCounter}`;
  await server.addUser(user, PASSWORD);
  let bytes = 0;
  const pending = new Set<Promise<unknown>>();
  for (let i = 0; i < count; i++) {
    const raw = make(i);
    bytes += raw.length;
    // Named as Dovecot's own deliveries name them (LDA, LMTP, IMAP APPEND: ",S=size,W=vsize"), so
    // the size listing is answered from file names, as on a real server. Unnamed, Dovecot reads
    // all 70 MB once to count line ends: 150 ms of the first poll of a fresh mailbox, measured.
    const p = server.deliver(user, raw, { sizes: true }).finally(() => pending.delete(p));
    pending.add(p);
    if (pending.size >= 16) await Promise.race(pending);
  }
  await Promise.all(pending);
  // As an LDA/LMTP delivery would have: Dovecot's index is up to date before the poll, so the
  // timed run does not include Dovecot scanning a Maildir it has never seen.
  const status = spawnSync('doveadm', ['-c', server.confFile, 'mailbox', 'status', '-u', user, 'messages', 'INBOX'], { encoding: 'utf8' });
  const seen = /messages=(\d+)/.exec(status.stdout)?.[1];
  if (seen === undefined) {
    if (!indexWarning) log(`doveadm could not index the mailbox (${(status.stderr || status.stdout).trim()}); runs include Dovecot's first scan`);
    indexWarning = true;
  } else if (Number(seen) !== count) {
    throw new Error(`Dovecot sees ${seen} messages in ${user}, ${count} were delivered`);
  }
  const dir = mkdtempSync(join(workDir, `${user}-`));
  const config = writeConfig(dir, {
    database: 'mailpoll.db',
    mailboxes: [{
      name: MAILBOX,
      protocol,
      host: server.host,
      port: protocol === 'imap' ? server.ports.imaps : server.ports.pop3s,
      tls: 'implicit',
      ca: server.caFile,
      username: user,
      password: PASSWORD,
      // One run takes the whole mailbox: the defaults (50 messages, 500 MB per run) would cap it.
      maxMessages: 1_000_000,
      maxMessageBytes: '100MB',
      maxBytes: '64GB',
      every: '1h',
    }],
  });
  return { user, dir, config, db: join(dir, 'mailpoll.db'), bytes };
}

async function dropMailbox(m: Mailbox): Promise<void> {
  await rm(m.dir, { recursive: true, force: true });
  await rm(server.maildirPath(m.user), { recursive: true, force: true });
}

const fetchArgs = (m: Mailbox, now = true): string[] => [BIN, 'fetch', ...(now ? ['--now'] : []), '--config', m.config, '--json'];

// ---------------------------------------------------------------------------------------------
// scenarios

interface RunSample { wallMs: number; maxRssKb: number | undefined; cpuS: number | undefined; bytes: number }

interface Throughput {
  protocol: 'imap' | 'pop3';
  label: string;
  messages: number;
  bytes: number;
  runs: RunSample[];
  medianMs: number;
  messagesPerSecond: number;
  megabytesPerSecond: number;
  peakRssKb: number | undefined;
  cpuShare: number | undefined;
}

const LABEL = { imap: 'IMAPS', pop3: 'POP3S' } as const;

function summarise(protocol: 'imap' | 'pop3', messages: number, runs: RunSample[]): Throughput {
  const medianMs = median(runs.map((r) => r.wallMs));
  const bytes = runs[0]?.bytes ?? 0;
  const rss = runs.map((r) => r.maxRssKb).filter((v): v is number => v !== undefined);
  const cpu = runs.filter((r) => r.cpuS !== undefined).map((r) => (r.cpuS as number) / (r.wallMs / 1000));
  return {
    protocol,
    label: LABEL[protocol],
    messages,
    bytes,
    runs,
    medianMs: round(medianMs),
    messagesPerSecond: round(messages / (medianMs / 1000)),
    megabytesPerSecond: round(mb(bytes) / (medianMs / 1000), 2),
    peakRssKb: rss.length > 0 ? Math.max(...rss) : undefined,
    cpuShare: cpu.length > 0 ? round(median(cpu), 2) : undefined,
  };
}

let mixStats: MixStats | undefined;

/** The mix generator as a per-index function (messages are produced in order). */
function mixSource(): (i: number) => Buffer {
  const generator = new BenchMailGenerator(opts.seed);
  return () => {
    const raw = generator.next().raw;
    mixStats = generator.stats;
    return raw;
  };
}

async function throughputRun(protocol: 'imap' | 'pop3', count: number, nodeFlags: readonly string[] = []): Promise<RunSample> {
  const m = await newMailbox(protocol, count, mixSource());
  try {
    const r = await runNode([...nodeFlags, ...fetchArgs(m)], { measure: true });
    const summary = verify(r, `${LABEL[protocol]} ${count}`, m.db, count, count);
    if (summary.bytes !== m.bytes) log(`note: ${LABEL[protocol]} fetched ${summary.bytes} bytes, ${m.bytes} were delivered`);
    return { wallMs: round(r.wallMs), maxRssKb: r.maxRssKb, cpuS: r.userS === undefined ? undefined : round((r.userS ?? 0) + (r.sysS ?? 0), 2), bytes: summary.bytes };
  } finally {
    await dropMailbox(m);
  }
}

async function throughput(protocol: 'imap' | 'pop3', count: number): Promise<Throughput> {
  const runs: RunSample[] = [];
  for (let run = 0; run < opts.runs; run++) {
    const sample = await throughputRun(protocol, count);
    runs.push(sample);
    log(`${LABEL[protocol]} ${count} messages, run ${run + 1}/${opts.runs}: ${fmtMs(sample.wallMs)}, ${round(count / (sample.wallMs / 1000))} msg/s, peak RSS ${fmtRss(sample.maxRssKb)}`);
  }
  return summarise(protocol, count, runs);
}

interface IdlePoll {
  protocol: 'imap' | 'pop3';
  stored: number;
  setupMs: number;
  samplesMs: number[];
  medianMs: number;
  peakRssKb: number | undefined;
  /** A bare session on the same mailbox after each poll (bench-bare.ts): the server's share. */
  bareSamplesMs: number[];
  bareMedianMs: number;
}

interface NothingDue { fetchMs: number[]; nodeMs: number[]; fetchMedianMs: number; nodeMedianMs: number; ratio: number }

/** A mailbox whose `stored` messages are all in the database already (its first fetch is not timed). */
async function storedMailbox(protocol: 'imap' | 'pop3', stored: number): Promise<{ mailbox: Mailbox; setupMs: number }> {
  const m = await newMailbox(protocol, stored, (i) => smallPlainMessage(i, opts.seed));
  try {
    const setup = await runNode(fetchArgs(m), { measure: false, timeoutMs: 1_800_000 });
    verify(setup, `${LABEL[protocol]} setup of ${stored}`, m.db, stored, stored);
    return { mailbox: m, setupMs: round(setup.wallMs) };
  } catch (err) {
    await dropMailbox(m);
    throw err;
  }
}

/**
 * Polls that find nothing new, in mailboxes of each size in `sizes`. The polls of the sizes take
 * turns (100, 10,000, 100, ...), so that both see the same moments of a noisy machine: their ratio
 * is the number that counts. The first mailbox is kept for the nothing-due scenario when `keepFirst`.
 */
async function idlePolls(protocol: 'imap' | 'pop3', sizes: readonly number[], keepFirst: boolean): Promise<{ results: IdlePoll[]; kept: Mailbox | undefined }> {
  const boxes: { stored: number; mailbox: Mailbox; setupMs: number; samples: number[]; rss: number[]; bare: number[] }[] = [];
  const ca = readFileSync(server.caFile);
  const port = protocol === 'imap' ? server.ports.imaps : server.ports.pop3s;
  try {
    for (const stored of sizes) boxes.push({ stored, ...(await storedMailbox(protocol, stored)), samples: [], rss: [], bare: [] });
    for (let k = 0; k < plan.idleRepeats; k++) {
      for (const b of boxes) {
        const r = await runNode(fetchArgs(b.mailbox), { measure: true });
        verify(r, `${LABEL[protocol]} no-new-mail poll of ${b.stored}`, b.mailbox.db, 0, b.stored);
        b.samples.push(round(r.wallMs));
        if (r.maxRssKb !== undefined) b.rss.push(r.maxRssKb);
        b.bare.push(round(await bareSession(protocol, { host: server.host, port, ca, user: b.mailbox.user, password: PASSWORD })));
      }
    }
    const results = boxes.map((b) => {
      const result: IdlePoll = {
        protocol, stored: b.stored, setupMs: b.setupMs, samplesMs: b.samples, medianMs: round(median(b.samples)), peakRssKb: b.rss.length > 0 ? Math.max(...b.rss) : undefined,
        bareSamplesMs: b.bare, bareMedianMs: round(median(b.bare)),
      };
      log(`${LABEL[protocol]} no-new-mail poll with ${b.stored} stored: ${fmtMs(result.medianMs)}; bare session ${fmtMs(result.bareMedianMs)} (first fetch of all: ${fmtMs(b.setupMs)})`);
      return result;
    });
    return { results, kept: keepFirst ? boxes[0]?.mailbox : undefined };
  } finally {
    for (const [i, b] of boxes.entries()) if (!(keepFirst && i === 0)) await dropMailbox(b.mailbox);
  }
}

/** `fetch` (no --now) when the only mailbox was polled a moment ago with `every: 1h`, beside `node -e ''`. */
async function nothingDue(m: Mailbox): Promise<NothingDue> {
  const fetchMs: number[] = [];
  const nodeMs: number[] = [];
  // One untimed warm-up each (page cache, first spawn); then interleaved so both see the same noise.
  for (let k = -1; k < plan.dueRepeats; k++) {
    const f = await runNode(fetchArgs(m, false), { measure: false });
    if (f.code !== 0 || f.stdout.trim() !== '{"ok":true,"mailboxes":[]}') {
      throw new Error(`nothing-due fetch did not find nothing due: exit ${f.code}, ${f.stdout.trim()}\n${f.stderrTail}`);
    }
    const n = await runNode(['-e', ''], { measure: false });
    if (n.code !== 0) throw new Error(`node -e '' exited with ${n.code}`);
    if (k >= 0) {
      fetchMs.push(round(f.wallMs));
      nodeMs.push(round(n.wallMs));
    }
  }
  const result = { fetchMs, nodeMs, fetchMedianMs: round(median(fetchMs)), nodeMedianMs: round(median(nodeMs)), ratio: round(median(fetchMs) / median(nodeMs), 2) };
  log(`nothing due: fetch ${fmtMs(result.fetchMedianMs)}, node -e '' ${fmtMs(result.nodeMedianMs)} (${result.ratio}x)`);
  return result;
}

interface LargeMessage { protocol: 'imap' | 'pop3'; attachmentBytes: number; bytes: number; runs: RunSample[]; medianMs: number; peakRssKb: number | undefined }

async function largeMessage(protocol: 'imap' | 'pop3', raw: Buffer): Promise<LargeMessage> {
  const runs: RunSample[] = [];
  for (let run = 0; run < opts.runs; run++) {
    const m = await newMailbox(protocol, 1, () => raw);
    try {
      const r = await runNode(fetchArgs(m), { measure: true });
      verify(r, `${LABEL[protocol]} large message`, m.db, 1, 1);
      const [row] = query<{ size: number }>(m.db, 'SELECT raw_size AS size FROM messages');
      if (row?.size !== raw.length) throw new Error(`${LABEL[protocol]} large message: stored ${row?.size} bytes of ${raw.length}`);
      runs.push({ wallMs: round(r.wallMs), maxRssKb: r.maxRssKb, cpuS: r.userS === undefined ? undefined : round((r.userS ?? 0) + (r.sysS ?? 0), 2), bytes: raw.length });
      log(`${LABEL[protocol]} ${(mb(raw.length)).toFixed(0)} MB message, run ${run + 1}/${opts.runs}: ${fmtMs(r.wallMs)}, peak RSS ${fmtRss(r.maxRssKb)}`);
    } finally {
      await dropMailbox(m);
    }
  }
  const rss = runs.map((r) => r.maxRssKb).filter((v): v is number => v !== undefined);
  return { protocol, attachmentBytes: plan.largeBytes, bytes: raw.length, runs, medianMs: round(median(runs.map((r) => r.wallMs))), peakRssKb: rss.length > 0 ? Math.max(...rss) : undefined };
}

// ---------------------------------------------------------------------------------------------
// CPU profile of one run (--profile)

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }
interface ProfileSummary { protocol: string; file: string; totalMs: number; categories: { category: string; ms: number; percent: number }[]; top: { fn: string; where: string; category: string; ms: number; percent: number }[] }

/** Where a frame's code lives, in words: the package or the part of mailpoll or of Node. */
function category(url: string, fn: string): string | undefined {
  if (fn === '(idle)') return 'idle: waiting for the network/server';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return 'native, outside JS (TLS, libuv, V8)';
  if (fn === '(root)') return 'root';
  if (url === '') return undefined; // a native function: counted where it was called from
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg !== undefined) {
    if (pkg === 'imapflow') return 'imapflow (IMAP client)';
    if (pkg === 'better-sqlite3') return 'SQLite (better-sqlite3)';
    if (['mailparser', '@zone-eu/mailsplit', 'mailsplit', 'libmime', 'libqp', 'libbase64', 'iconv-lite', 'encoding-japanese', 'html-to-text', 'htmlparser2', 'domhandler', 'domutils',
      'entities', 'selderee', '@selderee/plugin-htmlparser2', 'linkify-it', 'uc.micro', 'punycode.js', 'tlds', 'nodemailer', 'he', 'leac', 'parseley', 'peberminta', 'deepmerge'].includes(pkg)) {
      return `parsing (mailparser: ${pkg})`;
    }
    if (['pino', 'sonic-boom', 'thread-stream', 'pino-std-serializers', 'fast-redact', 'quick-format-unescaped', 'atomic-sleep', 'on-exit-leak-free', 'safe-stable-stringify'].includes(pkg)) return 'logging (pino)';
    if (['zod', 'yaml', 'commander', 'bindings', 'file-uri-to-path'].includes(pkg)) return `startup packages (${pkg})`;
    return `other packages (${pkg})`;
  }
  const dist = /\/(?:dist|src)\/([^/]+)\/(?:([^/]+)\/)?/.exec(url);
  if (dist !== null) return `mailpoll: ${dist[1]}${dist[2] !== undefined && !/\.[jt]s$/.test(dist[2]) ? `/${dist[2]}` : ''}`;
  if (/^node:(internal\/)?(tls|_tls|crypto|internal\/crypto)|_tls_wrap|tls_wrap/.test(url)) return 'Node TLS/crypto (JS side)';
  if (/^node:(internal\/)?(net|stream|streams|internal\/streams|buffer|events)|internal\/streams/.test(url)) return 'Node net/streams/buffers';
  if (/^node:internal\/(modules|deps\/cjs-module-lexer|fs|url|vm)/.test(url)) return 'Node module loading/fs (startup)';
  if (url.startsWith('node:')) return 'Node internals (timers, process, ...)';
  return `other (${url})`;
}

/**
 * The program runs from the bundle (scripts/bundle.js), where one chunk holds many packages: each
 * frame in dist/bundle/ is put back where its code came from, through the chunk's source map.
 */
function unbundler(): (frame: ProfileNode['callFrame']) => ProfileNode['callFrame'] {
  const maps = new Map<string, SourceMap | undefined>();
  const mapOf = (path: string) => {
    if (!maps.has(path)) {
      try {
        maps.set(path, new SourceMap(JSON.parse(readFileSync(`${path}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]));
      } catch {
        maps.set(path, undefined);
      }
    }
    return maps.get(path);
  };
  return (frame) => {
    if (!frame.url.includes('/dist/bundle/')) return frame;
    const path = fileURLToPath(frame.url);
    const entry = mapOf(path)?.findEntry(frame.lineNumber, frame.columnNumber) as { originalSource?: string; originalLine?: number } | undefined;
    if (entry?.originalSource === undefined) return frame;
    const original = entry.originalSource.startsWith('file:') ? fileURLToPath(entry.originalSource) : resolve(dirname(path), entry.originalSource);
    return { ...frame, url: pathToFileURL(original).href, lineNumber: entry.originalLine ?? frame.lineNumber };
  };
}

function summariseProfile(file: string, protocol: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const unbundle = unbundler();
  for (const n of profile.nodes) n.callFrame = unbundle(n.callFrame);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  for (let k = 0; k < profile.samples.length; k++) {
    const id = profile.samples[k] as number;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[k + 1] ?? 0));
  }
  const categoryOf = (id: number): string => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (n === undefined) break;
      const c = category(n.callFrame.url, n.callFrame.functionName);
      if (c !== undefined) {
        return c;
      }
    }
    return 'unknown';
  };
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const cats = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; category: string; us: number }>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (n === undefined) continue;
    const cat = categoryOf(id);
    cats.set(cat, (cats.get(cat) ?? 0) + us);
    const url = n.callFrame.url;
    const where = url === '' ? '(native)' : `${url.replace(/^file:\/\//, '').replace(`${REPO_ROOT}/`, '').replace(/^node_modules\//, '')}:${n.callFrame.lineNumber + 1}`;
    const key = `${n.callFrame.functionName}|${where}`;
    const entry = fns.get(key) ?? { fn: n.callFrame.functionName || '(anonymous)', where, category: cat, us: 0 };
    entry.us += us;
    fns.set(key, entry);
  }
  const pct = (us: number) => round((100 * us) / total, 1);
  return {
    protocol,
    file: relative(REPO_ROOT, file),
    totalMs: round(total / 1000),
    categories: [...cats].sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, ms: round(us / 1000), percent: pct(us) })),
    top: [...fns.values()].sort((a, b) => b.us - a.us).slice(0, 15).map((f) => ({ fn: f.fn, where: f.where, category: f.category, ms: round(f.us / 1000), percent: pct(f.us) })),
  };
}

async function profiledRun(protocol: 'imap' | 'pop3', count: number, dir: string): Promise<ProfileSummary[]> {
  const profDir = join(dir, protocol);
  mkdirSync(profDir, { recursive: true });
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the command line, before bin/mailpoll.js.
  const sample = await throughputRun(protocol, count, ['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
  log(`${LABEL[protocol]} profiled run (not in the medians): ${fmtMs(sample.wallMs)}`);
  // One file per thread, CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main one.
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).sort();
  if (files.length === 0) throw new Error(`no CPU profile was written in ${profDir}`);
  return files.map((f) => {
    const thread = Number(f.split('.')[4] ?? 0);
    return summariseProfile(join(profDir, f), `${LABEL[protocol]} ${thread === 0 ? 'main thread' : `worker thread ${thread}`}`);
  });
}

// ---------------------------------------------------------------------------------------------
// report

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function cpuModel(): string {
  return cpus()[0]?.model.trim() ?? 'unknown CPU';
}

function dovecotVersion(): string {
  const r = spawnSync('/usr/sbin/dovecot', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

function mixLine(s: MixStats): string {
  return `${s.count} messages, ${mb(s.bytes).toFixed(1)} MB on the wire (largest ${mb(s.largest).toFixed(2)} MB): ${s.plain} plain, ${s.alternative} text+HTML, `
    + `${s.mixed} with ${s.attachments} base64 attachments (${mb(s.attachmentBytes).toFixed(1)} MB decoded); ${s.encodedSubjects} RFC 2047 subjects; ${s.replies} replies`;
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  if (opts.generateOnly) {
    for (const count of opts.quick ? [100] : opts.large ? [1000, 5000] : [1000]) {
      const g = new BenchMailGenerator(opts.seed);
      for (let i = 0; i < count; i++) g.next();
      console.log(mixLine(g.stats));
    }
    return;
  }
  if (!dovecotAvailable()) fail('The bench needs Dovecot: sudo apt-get install dovecot-imapd dovecot-pop3d openssl (or scripts/install-deps.sh)');
  if (process.getuid?.() !== 0) fail('The bench runs a private Dovecot, which needs root (as the integration tests): run it as root.');
  if (!existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js'))) fail('Build first: npm run build (npm run bench does).');
  if (!hasGnuTime) log('GNU time not found (apt-get install time): peak RSS comes from polling /proc/PID/status VmHWM, CPU time is n/a');

  const startedAt = new Date();
  const environment = {
    node: process.version,
    cpu: cpuModel(),
    cores: cpus().length,
    memoryMB: Math.round(totalmem() / 1024 / 1024),
    dovecot: dovecotVersion(),
    platform: `${process.platform} ${process.arch}`,
    loadAverageAtStart: loadavg().map((v) => round(v, 2)),
    loadAverageAtEnd: [] as number[],
    rssMethod: hasGnuTime ? 'GNU time %M (wait4 ru_maxrss)' : '/proc/PID/status VmHWM polled every 10 ms',
  };
  log(`node ${environment.node}, ${environment.cpu} x ${environment.cores} cores, Dovecot ${environment.dovecot}, load ${environment.loadAverageAtStart.join(' ')}`);

  workDir = mkdtempSync(join(tmpdir(), 'mailpoll-bench-'));
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(REPO_ROOT, 'bench-results');
  mkdirSync(resultsDir, { recursive: true });

  const stop = async (signal: NodeJS.Signals) => {
    log(`${signal}: stopping`);
    current?.kill('SIGKILL');
    await server?.stop().catch(() => {});
    rmSync(workDir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', (s) => void stop(s));
  process.once('SIGTERM', (s) => void stop(s));

  log('starting a private Dovecot on 127.0.0.2');
  // Dovecot's default UIDL format (UID and UIDVALIDITY, 16 hex digits), as an installed Dovecot
  // has it. The test harness sets %g, the Maildir file name (some 60 bytes), so that tests can name
  // a message's file from its UIDL; a 10,000-message maildrop then lists 660 KB instead of 230 KB.
  server = await startDovecot({ extraConfig: 'pop3_uidl_format = %08Xu%08Xv\n' });
  const throughputs: Throughput[] = [];
  const idle: IdlePoll[] = [];
  let due: NothingDue | undefined;
  const large: LargeMessage[] = [];
  const profiles: ProfileSummary[] = [];
  const mixes: MixStats[] = [];
  try {
    const protocols = (['imap', 'pop3'] as const).filter((p) => opts.only.has(p));
    for (const count of plan.counts) {
      for (const protocol of protocols) {
        throughputs.push(await throughput(protocol, count));
        if (mixStats !== undefined && !mixes.some((s) => s.count === mixStats?.count)) {
          mixes.push({ ...mixStats });
          log(`mix: ${mixLine(mixStats)}`);
        }
      }
    }

    for (const protocol of opts.only.has('idle') ? (['imap', 'pop3'] as const) : []) {
      const { results, kept } = await idlePolls(protocol, plan.idleSizes, protocol === 'imap' && opts.only.has('due'));
      idle.push(...results);
      if (kept !== undefined) {
        try {
          due = await nothingDue(kept);
        } finally {
          await dropMailbox(kept);
        }
      }
    }

    if (opts.only.has('due') && !opts.only.has('idle')) {
      const { mailbox } = await storedMailbox('imap', plan.idleSizes[0] as number);
      try {
        due = await nothingDue(mailbox);
      } finally {
        await dropMailbox(mailbox);
      }
    }

    if (opts.only.has('large')) {
      log(`generating one message with a ${(plan.largeBytes / 1024 / 1024).toFixed(0)} MiB attachment`);
      const big = largeAttachmentMessage(plan.largeBytes, opts.seed);
      for (const protocol of ['imap', 'pop3'] as const) large.push(await largeMessage(protocol, big));
    }

    if (opts.profile) {
      const profDir = join(resultsDir, `profiles-${stamp}`);
      for (const protocol of protocols) profiles.push(...await profiledRun(protocol, plan.counts[0] as number, profDir));
    }
  } finally {
    await server.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
  environment.loadAverageAtEnd = loadavg().map((v) => round(v, 2));

  // ---- the table ----
  const base = plan.counts[0] as number;
  const rows: string[][] = [];
  for (const t of throughputs) {
    const target = t.messages === 1000 ? '>= 600 msg/s (aim 1000)' : '';
    const verdict = t.messages === 1000 ? (t.messagesPerSecond >= 1000 ? 'met aim' : t.messagesPerSecond >= 600 ? 'met' : 'MISSED') : '';
    rows.push([`${t.label} fetch, ${t.messages} new messages (${mb(t.bytes).toFixed(1)} MB)`,
      `${t.messagesPerSecond} msg/s, ${t.megabytesPerSecond} MB/s`, `${fmtMs(t.medianMs)} (median of ${t.runs.length})`,
      fmtRss(t.peakRssKb), t.cpuShare === undefined ? 'n/a' : `${Math.round(t.cpuShare * 100)}%`, target, verdict]);
  }
  for (const protocol of ['imap', 'pop3'] as const) {
    const polls = idle.filter((p) => p.protocol === protocol);
    const small = polls[0];
    const bigPoll = polls[polls.length - 1];
    for (const p of polls) {
      const isBig = p === bigPoll && p !== small;
      const ratio = isBig && small !== undefined ? p.medianMs / small.medianMs : undefined;
      rows.push([`${LABEL[protocol]} poll, no new mail, ${p.stored} stored`, fmtMs(p.medianMs) + (ratio !== undefined ? ` (${ratio.toFixed(2)}x)` : ''),
        `median of ${p.samplesMs.length}; bare session ${fmtMs(p.bareMedianMs)}`, fmtRss(p.peakRssKb), '',
        isBig ? `<= 1.2x the ${small?.stored ?? ''} poll` : '', ratio === undefined ? '' : ratio <= 1.2 ? 'met' : 'MISSED']);
    }
  }
  if (due !== undefined) {
    rows.push(['fetch, nothing due (cron tick)', `${fmtMs(due.fetchMedianMs)} (${due.ratio}x node)`, `median of ${due.fetchMs.length}`, '', '', "<= 2x node -e ''", due.ratio <= 2 ? 'met' : 'MISSED']);
    rows.push(["node -e '' (same run, for comparison)", fmtMs(due.nodeMedianMs), `median of ${due.nodeMs.length}`, '', '', '', '']);
  }
  for (const l of large) {
    const limit = 300 * 1024;
    rows.push([`${LABEL[l.protocol]} one message, ${(l.attachmentBytes / 1024 / 1024).toFixed(0)} MiB attachment (${mb(l.bytes).toFixed(1)} MB)`,
      fmtMs(l.medianMs), `median of ${l.runs.length}`, fmtRss(l.peakRssKb), '', 'peak RSS < 300 MB',
      l.peakRssKb === undefined ? 'n/a' : l.peakRssKb < limit ? 'met' : 'MISSED']);
  }

  const out: string[] = [];
  out.push(`mailpoll bench, ${startedAt.toISOString()}${opts.quick ? ' (--quick: smoke test, not a measurement)' : ''}`);
  out.push(`node ${environment.node}; ${environment.cpu}, ${environment.cores} cores, ${environment.memoryMB} MB; Dovecot ${environment.dovecot}; load average ${environment.loadAverageAtStart.join(' ')} at start, ${environment.loadAverageAtEnd.join(' ')} at end`);
  for (const s of mixes) out.push(`mix (seed ${opts.seed}): ${mixLine(s)}`);
  out.push(`each run: fresh Dovecot user (delivered as Dovecot's LDA names files, with S= and W= sizes, and indexed; not timed), fresh config and database; the whole \`mailpoll fetch --now --json\` process timed; IMAP after: seen, POP3 after: keep (the defaults); peak RSS: ${environment.rssMethod}; CPU = child user+sys / wall`);
  if (idle.length > 0) out.push('bare session: after each no-new-mail poll, a client doing no work of its own (TLS, login, POP3 UIDL or IMAP SELECT, logout) on the same mailbox: the server\'s share of the poll; its growth from the small to the large mailbox is what any client pays');
  out.push('');
  out.push(table(['scenario', 'result', 'time', 'peak RSS', 'CPU', 'target', 'verdict'], rows));
  for (const p of profiles) {
    out.push('');
    out.push(`CPU profile, ${p.protocol} ${base} messages (${p.file}; ${fmtMs(p.totalMs)} sampled), self time by where the code lives.`);
    out.push('(better-sqlite3 runs SQL natively inside the JS frame that calls it: "mailpoll: store" and sqliteTransaction, i.e. BEGIN/COMMIT with');
    out.push(' its WAL fsync, include SQLite\'s own time; TLS decryption happens in C++ under "native, outside JS" or the stream callbacks.)');
    out.push(table(['category', 'ms', '%'], p.categories.map((c) => [c.category, c.ms.toFixed(0), c.percent.toFixed(1)])));
    out.push('top functions by self time:');
    out.push(table(['function', 'where', 'category', 'ms', '%'], p.top.map((f) => [f.fn, f.where, f.category, f.ms.toFixed(0), f.percent.toFixed(1)])));
  }
  console.log(out.join('\n'));

  const json = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    options: opts,
    plan,
    environment,
    method: {
      process: 'node bin/mailpoll.js fetch --now --config FILE --json, spawned per run, wall time from spawn to exit',
      reset: 'new Dovecot user per run, messages delivered into its Maildir and indexed with doveadm before timing; new config and database',
      after: { imap: 'seen', pop3: 'keep' },
      megabyte: '1 MB = 1,000,000 bytes',
      rss: environment.rssMethod,
    },
    mix: mixes,
    throughput: throughputs,
    noNewMail: idle,
    nothingDue: due,
    largeMessage: large,
    profiles,
    targets: {
      throughputMessagesPerSecond: { min: 600, aim: 1000, at: 1000 },
      noNewMailRatio10kTo100: { max: 1.2 },
      nothingDueToNodeRatio: { max: 2 },
      largeMessagePeakRssMB: { max: 300 },
    },
  };
  const file = join(resultsDir, `bench-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nJSON: ${relative(process.cwd(), file)} (and bench-results/latest.json)`);
}

main().catch(async (err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  current?.kill('SIGKILL');
  await server?.stop().catch(() => {});
  if (workDir !== '') rmSync(workDir, { recursive: true, force: true });
  process.exit(1);
});
