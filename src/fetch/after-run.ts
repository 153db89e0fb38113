import type { Config } from '../config/types.js';
import { renderMetrics } from '../http/metrics.js';
import { writeFileAtomically } from '../http/metrics-file.js';
import type { Logger } from '../log.js';
import type { Db } from '../store/database.js';
import { pingAfterRun } from './pings.js';
import type { MailboxSummary } from './summary.js';

export interface AfterRunOptions {
  /** `--metrics-file`: where to write the metrics for node_exporter's textfile collector. */
  metricsFile: string | undefined;
  /** Absent when nothing was polled (a cron tick with nothing due loads no logger). */
  log: Logger | undefined;
}

/**
 * What `fetch` does once its mailboxes are polled: the dead-man ping (only when something was
 * polled; bounded by its timeout, never fails the run), then the metrics file. The metrics file
 * is written on every run, even one with nothing due, so `mailpoll_seconds_since_last_success`
 * stays current with each cron tick. A metrics file that cannot be written is an error (exit 1):
 * monitoring that silently stops is what it exists to prevent.
 */
export async function afterRun(config: Config, db: Db, summaries: readonly MailboxSummary[], options: AfterRunOptions): Promise<void> {
  if (options.log !== undefined) await pingAfterRun(config, db, summaries, options.log);
  if (options.metricsFile !== undefined) writeFileAtomically(options.metricsFile, renderMetrics(db, config.mailboxes, { process: false }));
}
