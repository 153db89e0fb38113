import { describe, expect, it } from 'vitest';
import { escapeLabelValue, formatPrometheus, formatValue, mailboxFamilies, processFamilies, renderMetrics } from '../../src/http/metrics.js';
import { openDatabase } from '../../src/store/database.js';
import { recordAttempt, recordOutcome } from '../../src/store/mailbox-state.js';
import { readMailboxMetrics } from '../../src/store/metrics.js';
import { parsePrometheusText, PromParseError, sampleValue } from '../support/prometheus-text.js';

describe('Prometheus text formatting', () => {
  it('escapes label values and HELP text, and writes special values as Go does', () => {
    const text = formatPrometheus([
      { name: 'x_total', type: 'counter', help: 'a \\ b\nc', samples: [{ labels: { mailbox: 'we"ird\\name\nx' }, value: 3 }] },
      { name: 'y', type: 'gauge', help: 'y', samples: [{ labels: {}, value: Infinity }, { labels: { a: '1' }, value: 0.25 }] },
    ]);
    expect(text).toBe(
      '# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{mailbox="we\\"ird\\\\name\\nx"} 3\n' +
        '# HELP y y\n# TYPE y gauge\ny +Inf\ny{a="1"} 0.25\n',
    );
    const parsed = parsePrometheusText(text);
    expect(sampleValue(parsed, 'x_total', { mailbox: 'we"ird\\name\nx' })).toBe(3);
    expect(parsed.get('x_total')?.help).toBe('a \\ b\nc');
    expect(sampleValue(parsed, 'y')).toBe(Infinity);
    expect(escapeLabelValue('plain')).toBe('plain');
    expect([formatValue(NaN), formatValue(-Infinity), formatValue(12), formatValue(1.5)]).toEqual(['NaN', '-Inf', '12', '1.5']);
  });

  it('refuses invalid metric and label names rather than writing an unparsable file', () => {
    expect(() => formatPrometheus([{ name: 'bad-name', type: 'gauge', help: '', samples: [] }])).toThrow();
    expect(() => formatPrometheus([{ name: 'ok', type: 'gauge', help: '', samples: [{ labels: { 'bad-label': 'x' }, value: 1 }] }])).toThrow();
  });

  it('process metrics parse and carry the usual names', () => {
    const parsed = parsePrometheusText(formatPrometheus(processFamilies()));
    for (const name of ['process_resident_memory_bytes', 'process_start_time_seconds', 'process_cpu_seconds_total', 'nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes']) {
      expect(sampleValue(parsed, name), name).toBeGreaterThan(0);
    }
    const start = sampleValue(parsed, 'process_start_time_seconds') ?? 0;
    expect(Math.abs(start - (Date.now() / 1000 - process.uptime()))).toBeLessThan(5);
  });
});

describe('the strict test parser', () => {
  it('rejects what a half-written or malformed file would look like', () => {
    const good = '# HELP a x\n# TYPE a gauge\na{m="1"} 1\n';
    expect(() => parsePrometheusText(good)).not.toThrow();
    for (const bad of [
      good.slice(0, -1), // no final newline
      good.slice(0, -3), // cut inside a sample
      '# TYPE a gauge\na{m="1} 1\n',
      '# TYPE a gauge\na{m="\\x"} 1\n',
      '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n',
      '# TYPE a gauge\na 1\na 2\n',
      '# TYPE a gauge\n\na 1\n',
      '# TYPE a gauge\na one\n',
      '# a comment\n',
    ]) {
      expect(() => parsePrometheusText(bad), JSON.stringify(bad)).toThrow(PromParseError);
    }
  });
});

describe('mailbox metrics from the database', () => {
  it('count polls, failures, bytes and receipts as the database records them', () => {
    const db = openDatabase(':memory:');
    const t = new Date('2026-03-01T12:00:00Z');
    recordAttempt(db, 'support', t);
    recordOutcome(db, 'support', undefined, t, { durationMs: 1500, bytes: 1000 });
    recordAttempt(db, 'support', t);
    recordOutcome(db, 'support', 'AUTH: the server refused the password for support@example.com', new Date(t.getTime() + 60_000), { durationMs: 250, bytes: 24 });
    const receipt = db.prepare("INSERT INTO receipts (mailbox, server_id, outcome, fetched_at) VALUES (?, ?, ?, '2026-03-01T12:00:00Z')");
    for (const [id, outcome] of [['1', 'stored'], ['2', 'stored'], ['3', 'headers-only'], ['4', 'duplicate'], ['5', 'oversize'], ['6', 'quarantined']]) receipt.run('support', id, outcome);
    receipt.run('other', '1', 'stored');
    db.prepare("INSERT INTO message_failures (mailbox, server_id, attempts, last_error, first_failed_at, last_failed_at, quarantined_at) VALUES ('support', '6', 3, 'x', 'a', 'b', 'c'), ('support', '7', 1, 'x', 'a', 'b', NULL)").run();

    const [m, never] = readMailboxMetrics(db, ['support', 'never-polled']);
    expect(m).toEqual({
      mailbox: 'support', pollsTotal: 2, pollFailuresTotal: 1, messagesStoredTotal: 3, duplicatesTotal: 1, oversizeTotal: 1, quarantined: 1,
      bytesFetchedTotal: 1024, lastSuccessAt: t, lastPollDurationMs: 250, consecutiveFailures: 1, lastErrorCode: 'AUTH',
    });
    expect(never).toMatchObject({ pollsTotal: 0, messagesStoredTotal: 0, lastSuccessAt: undefined, lastPollDurationMs: undefined });

    const now = new Date(t.getTime() + 120_000);
    const mailboxes = [
      { name: 'support', everyMs: 300_000, healthWindowMs: undefined },
      { name: 'never-polled', everyMs: 300_000, healthWindowMs: undefined },
    ];
    const text = renderMetrics(db, mailboxes, { now, process: false });
    const parsed = parsePrometheusText(text);
    const support = { mailbox: 'support' };
    expect(sampleValue(parsed, 'mailpoll_polls_total', support)).toBe(2);
    expect(sampleValue(parsed, 'mailpoll_poll_failures_total', support)).toBe(1);
    expect(sampleValue(parsed, 'mailpoll_messages_stored_total', support)).toBe(3);
    expect(sampleValue(parsed, 'mailpoll_duplicates_total', support)).toBe(1);
    expect(sampleValue(parsed, 'mailpoll_oversize_total', support)).toBe(1);
    expect(sampleValue(parsed, 'mailpoll_quarantined', support)).toBe(1);
    expect(sampleValue(parsed, 'mailpoll_bytes_fetched_total', support)).toBe(1024);
    expect(sampleValue(parsed, 'mailpoll_seconds_since_last_success', support)).toBe(120);
    expect(sampleValue(parsed, 'mailpoll_last_success_timestamp_seconds', support)).toBe(t.getTime() / 1000);
    expect(sampleValue(parsed, 'mailpoll_last_poll_duration_seconds', support)).toBe(0.25);
    expect(sampleValue(parsed, 'mailpoll_consecutive_failures', support)).toBe(1);
    expect(sampleValue(parsed, 'mailpoll_mailbox_healthy', support)).toBe(0);
    const never2 = { mailbox: 'never-polled' };
    expect(sampleValue(parsed, 'mailpoll_polls_total', never2)).toBe(0);
    expect(sampleValue(parsed, 'mailpoll_seconds_since_last_success', never2)).toBe(Infinity);
    expect(sampleValue(parsed, 'mailpoll_last_poll_duration_seconds', never2)).toBeUndefined();
    // Types: counters end in _total; the textfile carries no process_* series (node_exporter has its own).
    for (const f of parsed.values()) expect(f.type === 'counter', f.name).toBe(f.name.endsWith('_total'));
    expect([...parsed.keys()].some((n) => n.startsWith('process_') || n.startsWith('nodejs_'))).toBe(false);
    // No error text, host or user reaches the metrics.
    expect(text).not.toContain('refused');
    expect(text).not.toContain('example.com');
    db.close();
  });

  it('a success resets the failure streak but the counters keep counting', () => {
    const db = openDatabase(':memory:');
    recordOutcome(db, 'a', 'TLS: bad certificate', new Date(), { durationMs: 1, bytes: 0 });
    recordOutcome(db, 'a', undefined, new Date(), { durationMs: 1, bytes: 5 });
    const [m] = readMailboxMetrics(db, ['a']);
    expect(m).toMatchObject({ pollsTotal: 2, pollFailuresTotal: 1, bytesFetchedTotal: 5, consecutiveFailures: 0, lastErrorCode: undefined });
    const families = mailboxFamilies([{ name: 'a', everyMs: 60_000, healthWindowMs: undefined }], [m!], new Date());
    expect(families.find((f) => f.name === 'mailpoll_mailbox_healthy')?.samples[0]?.value).toBe(1);
    db.close();
  });
});
