import { describe, expect, it } from 'vitest';
import { clientAddress, FailureLimiter } from '../../src/http/rate-limit.js';

describe('FailureLimiter', () => {
  it('answers failures more slowly each time, then blocks the address until its failures leave the window', () => {
    const limiter = new FailureLimiter({ maxFailures: 5, windowMs: 60_000, maxDelayMs: 2_000, maxAddresses: 100 });
    const t0 = 1_000_000;
    const delays = [0, 1, 2, 3, 4].map((i) => {
      expect(limiter.admit('203.0.113.9', t0 + i * 1000)).toEqual({ blocked: false });
      return limiter.fail('203.0.113.9', t0 + i * 1000);
    });
    expect(delays).toEqual([0, 250, 500, 1000, 2000]);
    // The sixth try is not even compared: blocked until the first failure is a minute old.
    expect(limiter.admit('203.0.113.9', t0 + 5000)).toEqual({ blocked: true, retryAfterMs: 55_000 });
    expect(limiter.admit('203.0.113.9', t0 + 59_999)).toEqual({ blocked: true, retryAfterMs: 1 });
    expect(limiter.admit('203.0.113.9', t0 + 60_000)).toEqual({ blocked: false });
    // Another address is not affected.
    expect(limiter.admit('198.51.100.7', t0 + 5000)).toEqual({ blocked: false });
  });

  it('caps the delay and forgets old failures', () => {
    const limiter = new FailureLimiter({ maxFailures: 100, windowMs: 10_000, maxDelayMs: 3_000, maxAddresses: 100 });
    let last = 0;
    for (let i = 0; i < 20; i++) last = limiter.fail('a', i);
    expect(last).toBe(3_000);
    expect(limiter.fail('a', 1_000_000)).toBe(0); // all earlier failures are out of the window
  });

  it('remembers a bounded number of addresses, dropping the least recently failed', () => {
    const limiter = new FailureLimiter({ maxFailures: 1, windowMs: 60_000, maxDelayMs: 2_000, maxAddresses: 3 });
    for (const [i, a] of ['a', 'b', 'c', 'd'].entries()) limiter.fail(a, i);
    expect(limiter.size).toBe(3);
    expect(limiter.admit('a', 10)).toEqual({ blocked: false });
    expect(limiter.admit('d', 10).blocked).toBe(true);
  });

  it('counts an IPv4 client on a dual-stack socket under its IPv4 address', () => {
    expect(clientAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(clientAddress('::1')).toBe('::1');
    expect(clientAddress(undefined)).toBe('unknown');
  });
});
