import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { registerPingSecrets, runVerdict, sendPing, shouldPing } from '../../src/fetch/pings.js';
import { emptySummary } from '../../src/fetch/summary.js';
import { scrub } from '../../src/log.js';

const servers: { server: Server; sockets: Set<Socket> }[] = [];
afterEach(async () => {
  for (const { server, sockets } of servers.splice(0)) {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

async function serve(onRequest: (req: IncomingMessage, body: string, res: import('node:http').ServerResponse) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => onRequest(req, body, res));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  servers.push({ server, sockets });
  return (server.address() as AddressInfo).port;
}

const ok = (mailbox: string, stored = 0) => ({ ...emptySummary(mailbox), stored });
const failed = (mailbox: string, code: string) => ({ ...emptySummary(mailbox), ok: false, errorCode: code, error: `secret detail for ${mailbox}` });

describe('the verdict of a run', () => {
  it('is success only when every polled mailbox succeeded and no configured mailbox is failing', () => {
    expect(runVerdict([ok('a', 2), ok('b')], [])).toEqual({ kind: 'success', body: 'mailpoll: success\npolled: a ok (stored 2), b ok (stored 0)\n' });
    expect(runVerdict([ok('a'), failed('b', 'AUTH')], [{ mailbox: 'b', code: 'AUTH' }]).kind).toBe('failure');
    // b was not polled this run but its latest poll failed: no flapping back to "up".
    const v = runVerdict([ok('a')], [{ mailbox: 'b', code: 'TLS' }]);
    expect(v).toEqual({ kind: 'failure', body: 'mailpoll: failure\npolled: a ok (stored 0)\nfailing: b (TLS)\n' });
    // A mailbox skipped for a lease held elsewhere is neither polled nor failed.
    expect(runVerdict([{ ...ok('a'), skipped: 'in use' }, ok('b')], []).body).toBe('mailpoll: success\npolled: b ok (stored 0)\n');
  });

  it('carries error codes, never error texts', () => {
    const v = runVerdict([failed('a', 'AUTH'), failed('b', 'weird code: with text')], []);
    expect(v.body).toContain('a FAILED (AUTH)');
    expect(v.body).toContain('b FAILED (ERROR)');
    expect(v.body).not.toContain('secret detail');
  });
});

describe('daemon ping throttling', () => {
  it('pings on every change of verdict, else at most once per interval', () => {
    expect(shouldPing(undefined, 'success', 0, 60_000)).toBe(true);
    expect(shouldPing({ kind: 'success', at: 0 }, 'success', 59_999, 60_000)).toBe(false);
    expect(shouldPing({ kind: 'success', at: 0 }, 'success', 60_000, 60_000)).toBe(true);
    expect(shouldPing({ kind: 'success', at: 0 }, 'failure', 1, 60_000)).toBe(true);
    expect(shouldPing({ kind: 'failure', at: 0 }, 'success', 1, 60_000)).toBe(true);
  });
});

describe('sendPing', () => {
  it('POSTs the body to the URL and reports the status', async () => {
    const seen: { method?: string; url?: string; body: string }[] = [];
    const port = await serve((req, body, res) => {
      seen.push({ method: req.method, url: req.url, body });
      res.writeHead(req.url?.endsWith('/fail') ? 404 : 200).end('OK');
    });
    expect(await sendPing(`http://127.0.0.1:${port}/abc-uuid`, 'hello\n', 2_000)).toEqual({ answered: true, status: 200 });
    expect(await sendPing(`http://127.0.0.1:${port}/abc-uuid/fail`, 'x', 2_000)).toEqual({ answered: true, status: 404 });
    expect(seen).toEqual([
      { method: 'POST', url: '/abc-uuid', body: 'hello\n' },
      { method: 'POST', url: '/abc-uuid/fail', body: 'x' },
    ]);
  });

  it('gives up after the timeout on a server that accepts and never answers', async () => {
    const port = await serve(() => {
      // never answers
    });
    const started = Date.now();
    const result = await sendPing(`http://127.0.0.1:${port}/x`, 'x', 300);
    const ms = Date.now() - started;
    expect(result).toEqual({ answered: false, reason: 'no answer within 300 ms' });
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(1_000);
  });

  it('reports a refused connection without throwing', async () => {
    const port = await serve(() => undefined);
    const { server, sockets } = servers.pop()!;
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await sendPing(`http://127.0.0.1:${port}/x`, 'x', 2_000)).toEqual({ answered: false, reason: 'ECONNREFUSED' });
  });

  it('treats the URLs as secrets: they are scrubbed wherever they appear', () => {
    registerPingSecrets({ successUrl: 'https://hc-ping.com/5b5b2a2e-3d1c-4e7a-9d52-2d7f1a1c9e01', failureUrl: 'https://hc-ping.com/5b5b2a2e-3d1c-4e7a-9d52-2d7f1a1c9e01/fail', timeoutMs: 5_000 });
    expect(scrub('GET https://hc-ping.com/5b5b2a2e-3d1c-4e7a-9d52-2d7f1a1c9e01/fail failed')).not.toContain('5b5b2a2e');
    expect(scrub('path /5b5b2a2e-3d1c-4e7a-9d52-2d7f1a1c9e01 seen')).not.toContain('5b5b2a2e');
  });
});
