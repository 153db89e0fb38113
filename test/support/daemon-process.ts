import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { spawnMailpoll } from './mailpoll.js';

/**
 * `mailpoll daemon` as a real child process, optionally with `--listen 127.0.0.1:0` and plain HTTP
 * requests to it (node:http without an agent, so every header sent is one the test chose).
 * Requires `npm run build`.
 */
export interface LogLine {
  msg: string;
  level: number;
  [key: string]: unknown;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

const running = new Set<DaemonProcess>();

/** `mailpoll daemon` as a child process: its JSON log lines, a clean stop, a kill. */
export class DaemonProcess {
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  protected constructor(readonly child: ChildProcess) {
    child.stdout?.resume();
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  static spawn(config: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): DaemonProcess {
    return new DaemonProcess(spawnMailpoll(['daemon', '--config', config, ...args], env));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The JSON log lines written so far. */
  logs(): LogLine[] {
    return this.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
  }

  count(msg: string | RegExp): number {
    return this.logs().filter((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg))).length;
  }

  /** SIGTERM, then how it ended and how long that took. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const started = Date.now();
    this.child.kill('SIGTERM');
    const result = await Promise.race([this.exited, sleep(30_000).then(() => undefined)]);
    if (result === undefined) throw new Error(`the daemon did not exit within 30 s of SIGTERM\n${this.stderr}`);
    return { ...result, ms: Date.now() - started };
  }

  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Kills every daemon still running (afterEach/afterAll): none may outlive its test. */
  static async killAll(): Promise<void> {
    await Promise.all([...running].map((d) => d.kill()));
  }
}

/** A daemon with `--listen 127.0.0.1:0`, and plain HTTP requests to it. */
export class HttpDaemon extends DaemonProcess {
  port = 0;

  /** Starts the daemon and waits until its HTTP trigger listens (or it exits, which throws). */
  static async start(config: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<HttpDaemon> {
    const d = new HttpDaemon(spawnMailpoll(['daemon', '--config', config, '--listen', '127.0.0.1:0', '--log-level', 'debug', ...args], env));
    const started = Date.now();
    while (d.port === 0) {
      const line = d.logs().find((l) => l.msg === 'HTTP trigger listening');
      if (line !== undefined) d.port = line.port as number;
      else if (!d.running) throw new Error(`the daemon exited before listening\n${d.stderr}`);
      else if (Date.now() - started > 20_000) throw new Error(`the daemon did not listen within 20 s\n${d.stderr}`);
      else await sleep(20);
    }
    return d;
  }

  request(method: string, path: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    return httpRequest(`http://127.0.0.1:${this.port}${path}`, method, headers);
  }
}

/** One request; no User-Agent or other header unless given. */
export function httpRequest(url: string, method: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(120_000, () => req.destroy(new Error(`no answer from ${method} ${url} within 120 s`)));
    req.end();
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, daemon?: DaemonProcess): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (daemon !== undefined && !daemon.running) throw new Error(`the daemon exited while waiting for ${what}\n${daemon.stderr}`);
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${daemon ? `\n${daemon.stderr}` : ''}`);
    await sleep(20);
  }
}
