import { configPath, loadConfig } from '../config/load.js';
import { openDatabase } from '../store/database.js';
import { statusReport, type StatusReport } from '../store/status-report.js';
import { EXIT } from './exit-codes.js';
import type { GlobalOptions } from './main.js';

export async function statusCommand(opts: GlobalOptions & { json: boolean }): Promise<number> {
  const config = loadConfig(configPath(opts.config));
  const db = openDatabase(config.database);
  try {
    const report = statusReport(db, config.mailboxes);
    process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
    return EXIT.OK;
  } finally {
    db.close();
  }
}

const when = (iso: string | null) => (iso === null ? 'never' : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

export function formatStatus(report: StatusReport): string {
  const out: string[] = [];
  for (const m of report.mailboxes) {
    const health = m.consecutiveFailures === 0 ? 'ok' : `FAILING (${m.consecutiveFailures} in a row)`;
    out.push(`${m.mailbox}: ${health}${m.leasedBy ? `, being polled by ${m.leasedBy}` : ''}`);
    out.push(`  last attempt   ${when(m.lastAttemptAt)}`);
    out.push(`  last success   ${when(m.lastSuccessAt)}`);
    out.push(`  next due       ${m.nextDueAt === null ? 'now' : when(m.nextDueAt)}`);
    if (m.lastError) out.push(`  last error     ${m.lastError}`);
    out.push(`  stored ${m.stored}, duplicates ${m.duplicates}, oversize ${m.oversize} (+${m.headersOnly} headers only), quarantined ${m.quarantined.length}` +
      (m.owedAcknowledgements > 0 ? `, server actions owed ${m.owedAcknowledgements}` : ''));
    for (const q of m.quarantined) out.push(`  quarantined    ${q.serverId} after ${q.attempts} attempts: ${q.lastError}`);
  }
  const t = report.totals;
  out.push('', `database: ${t.tickets} tickets, ${t.messages} messages (${mb(t.rawBytes)}), ${t.attachments} attachments (${mb(t.attachmentBytes)} stored once per content), ${t.quarantined} quarantined`);
  return `${out.join('\n')}\n`;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
