import { createAnalyser } from '../parse/analyse-pool.js';
import { constants } from 'node:os';
import { configPath, loadConfig } from '../config/load.js';
import { runDaemon } from '../daemon/daemon.js';
import { ConfigError } from '../errors.js';
import { DaemonPinger } from '../fetch/pings.js';
import { storeRules } from '../fetch/run-fetch.js';
import { parseListen } from '../http/listen.js';
import { loadApiKey, startHttpServer, type HttpServer } from '../http/server.js';
import { openDatabase } from '../store/database.js';
import { EXIT } from './exit-codes.js';
import { openLogger } from './log-setup.js';
import type { GlobalOptions } from './main.js';

export interface DaemonCommandOptions extends GlobalOptions {
  concurrency: number;
  /** `--listen ADDRESS:PORT`: serve POST /fetch, /health and /metrics (src/http/server.ts). */
  listen?: string;
}

/**
 * `mailpoll daemon`: runs until SIGTERM or SIGINT. The first signal stops it cleanly (every poll in
 * flight finishes its message in hand, commits and acknowledges; then exit 0); a second one exits
 * at once, which is safe too: a message fetched but not committed is fetched again next run, one
 * committed but not acknowledged is acknowledged next run (DESIGN.md, "Exactly once").
 */
export async function daemonCommand(opts: DaemonCommandOptions): Promise<number> {
  const file = configPath(opts.config);
  const config = loadConfig(file);
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) {
    throw new ConfigError([{ file, line: undefined, column: undefined, field: '--concurrency', message: 'must be a whole number of at least 1' }]);
  }
  const listen = opts.listen === undefined ? undefined : parseListen(opts.listen);
  if (listen !== undefined && 'error' in listen) {
    throw new ConfigError([{ file, line: undefined, column: undefined, field: '--listen', message: listen.error }]);
  }
  // Resolved before anything starts: a daemon whose trigger cannot check keys does not run.
  const apiKey = listen === undefined ? undefined : await loadApiKey(config);
  const log = await openLogger(opts, process.stderr.isTTY === true, { service: true });
  const db = openDatabase(config.database);
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      log.info({ signal }, 'shutdown requested: finishing the messages in hand (signal again to exit at once)');
      controller.abort();
      return;
    }
    log.warn({ signal }, 'second signal: exiting at once; anything not yet acknowledged is completed next run');
    // 128 + signal number, what a shell reports for a process ended by that signal.
    process.exit(128 + (constants.signals[signal] ?? 0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const pinger = config.pings === undefined ? undefined : new DaemonPinger({ ...config, pings: config.pings }, db, log);
  let http: HttpServer | undefined;
  // One parser worker pool for the daemon's whole life, shared by its polls and triggered fetches.
  const analyser = createAnalyser();
  try {
    if (listen !== undefined && apiKey !== undefined) {
      http = await startHttpServer({
        listen, config, db, log, apiKey, concurrency: opts.concurrency, rules: storeRules(config), signal: controller.signal, analyser,
        onRun: (summaries) => pinger?.afterRun(summaries),
      });
    }
    await runDaemon(config, db, log, {
      concurrency: opts.concurrency,
      signal: controller.signal,
      analyser,
      onPoll: pinger === undefined ? undefined : (summary) => pinger.afterRun([summary]),
    });
  } finally {
    controller.abort();
    await http?.close(); // a triggered fetch in flight finishes its message in hand first
    await pinger?.settle(); // each bounded by the ping timeout
    await analyser.close();
    db.close();
    log.info('database closed; daemon stopped');
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  return EXIT.OK;
}
