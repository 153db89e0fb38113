import { performance } from 'node:perf_hooks';
import type { MailboxConfig } from '../config/types.js';
import type { Db } from '../store/database.js';
import { readMailboxMetrics, type MailboxMetrics } from '../store/metrics.js';
import { assessHealth } from './health.js';

/**
 * Metrics in the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): what `GET /metrics` serves and
 * what `fetch --metrics-file` writes for node_exporter's textfile collector.
 */

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface Sample {
  labels: Readonly<Record<string, string>>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Renders families: `# HELP`, `# TYPE`, then one line per sample; ends with a newline. */
export function formatPrometheus(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new Error(`invalid metric name ${f.name}`);
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => {
        if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new Error(`invalid label name ${k}`);
        return `${k}="${escapeLabelValue(v)}"`;
      });
      lines.push(`${f.name}${labels.length > 0 ? `{${labels.join(',')}}` : ''} ${formatValue(s.value)}`);
    }
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** A label value may hold anything; backslash, double quote and line feed are escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes only backslash and line feed. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Go's ParseFloat syntax: integers as such, +Inf, -Inf, NaN. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** Per-mailbox families, built from the database's record (no counting in memory). */
export function mailboxFamilies(
  mailboxes: readonly Pick<MailboxConfig, 'name' | 'everyMs' | 'healthWindowMs'>[],
  metrics: readonly MailboxMetrics[],
  now: Date,
): MetricFamily[] {
  const health = new Map(assessHealth(mailboxes, metrics, now).mailboxes.map((h) => [h.name, h]));
  const each = (pick: (m: MailboxMetrics) => number | undefined): Sample[] =>
    metrics.flatMap((m) => {
      const value = pick(m);
      return value === undefined ? [] : [{ labels: { mailbox: m.mailbox }, value }];
    });
  const family = (name: string, type: MetricFamily['type'], help: string, pick: (m: MailboxMetrics) => number | undefined): MetricFamily => ({
    name,
    type,
    help,
    samples: each(pick),
  });
  return [
    family('mailpoll_polls_total', 'counter', 'Polls of the mailbox that finished, successful or not.', (m) => m.pollsTotal),
    family('mailpoll_poll_failures_total', 'counter', 'Polls of the mailbox that failed.', (m) => m.pollFailuresTotal),
    family('mailpoll_messages_stored_total', 'counter', 'Messages from the mailbox stored in the database (receipts stored or headers-only).', (m) => m.messagesStoredTotal),
    family('mailpoll_duplicates_total', 'counter', 'Messages skipped because they were already stored (receipts duplicate).', (m) => m.duplicatesTotal),
    family('mailpoll_oversize_total', 'counter', 'Messages left on the server for being over maxMessageBytes (receipts oversize).', (m) => m.oversizeTotal),
    family('mailpoll_quarantined', 'gauge', 'Messages of the mailbox in quarantine now (see mailpoll status).', (m) => m.quarantined),
    family('mailpoll_bytes_fetched_total', 'counter', 'Raw message bytes downloaded from the mailbox.', (m) => m.bytesFetchedTotal),
    family('mailpoll_consecutive_failures', 'gauge', 'Failed polls in a row; 0 after a success.', (m) => m.consecutiveFailures),
    family('mailpoll_seconds_since_last_success', 'gauge', 'Seconds since the last successful poll; +Inf when there was none.', (m) =>
      m.lastSuccessAt === undefined ? Infinity : Math.max(0, Math.round((now.getTime() - m.lastSuccessAt.getTime()) / 1000)),
    ),
    family('mailpoll_last_success_timestamp_seconds', 'gauge', 'Unix time of the last successful poll (absent when there was none).', (m) =>
      m.lastSuccessAt === undefined ? undefined : m.lastSuccessAt.getTime() / 1000,
    ),
    family('mailpoll_last_poll_duration_seconds', 'gauge', 'How long the latest poll took (absent when never polled).', (m) =>
      m.lastPollDurationMs === undefined ? undefined : m.lastPollDurationMs / 1000,
    ),
    family('mailpoll_mailbox_healthy', 'gauge', '1 when the latest poll succeeded within the health window (as /health), else 0.', (m) =>
      health.get(m.mailbox)?.ok === true ? 1 : 0,
    ),
  ];
}

/**
 * The process's own metrics, under the names Prometheus client libraries use. Only served by the
 * daemon: a textfile read by node_exporter must not carry `process_*` series, which would clash
 * with node_exporter's own.
 */
export function processFamilies(): MetricFamily[] {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  const one = (name: string, type: MetricFamily['type'], help: string, value: number): MetricFamily => ({
    name,
    type,
    help,
    samples: [{ labels: {}, value }],
  });
  return [
    one('process_cpu_user_seconds_total', 'counter', 'User CPU time spent in seconds.', cpu.user / 1e6),
    one('process_cpu_system_seconds_total', 'counter', 'System CPU time spent in seconds.', cpu.system / 1e6),
    one('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', (cpu.user + cpu.system) / 1e6),
    one('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', memory.rss),
    one('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', Math.round(performance.timeOrigin) / 1000),
    one('nodejs_heap_size_total_bytes', 'gauge', 'Process heap size from Node.js in bytes.', memory.heapTotal),
    one('nodejs_heap_size_used_bytes', 'gauge', 'Process heap size used from Node.js in bytes.', memory.heapUsed),
    one('nodejs_external_memory_bytes', 'gauge', 'Node.js external memory size in bytes.', memory.external),
  ];
}

/** The metrics text for the configured mailboxes; `process` adds the process families (daemon). */
export function renderMetrics(
  db: Db,
  mailboxes: readonly Pick<MailboxConfig, 'name' | 'everyMs' | 'healthWindowMs'>[],
  options: { now?: Date; process: boolean },
): string {
  const now = options.now ?? new Date();
  const metrics = readMailboxMetrics(db, mailboxes.map((m) => m.name));
  return formatPrometheus([...mailboxFamilies(mailboxes, metrics, now), ...(options.process ? processFamilies() : [])]);
}
