import { describe, expect, it } from 'vitest';
import { ApiKey, bearerToken } from '../../src/http/auth.js';
import { isLoopback, parseListen } from '../../src/http/listen.js';

const KEY = 'k3y-0123456789abcdef-XYZ';

describe('ApiKey', () => {
  const key = new ApiKey(KEY);

  it('accepts the key as a Bearer token or as the whole User-Agent', () => {
    expect(key.authorizes({ authorization: `Bearer ${KEY}` })).toBe(true);
    expect(key.authorizes({ authorization: `bearer ${KEY}` })).toBe(true);
    expect(key.authorizes({ 'user-agent': KEY })).toBe(true);
    // A wrong Bearer does not spoil a right User-Agent, and the other way round.
    expect(key.authorizes({ authorization: 'Bearer nope', 'user-agent': KEY })).toBe(true);
    expect(key.authorizes({ authorization: `Bearer ${KEY}`, 'user-agent': 'Wget/1.21' })).toBe(true);
  });

  it('refuses a missing key, a wrong one, a prefix, an extension, and the key in any other header', () => {
    expect(key.authorizes({})).toBe(false);
    expect(key.authorizes({ 'user-agent': 'curl/8.5.0' })).toBe(false);
    expect(key.authorizes({ authorization: 'Bearer wrong' })).toBe(false);
    expect(key.authorizes({ authorization: `Bearer ${KEY.slice(0, -1)}` })).toBe(false);
    expect(key.authorizes({ authorization: `Bearer ${KEY}x` })).toBe(false);
    expect(key.authorizes({ 'user-agent': `${KEY} ` })).toBe(false);
    expect(key.authorizes({ 'user-agent': `Wget ${KEY}` })).toBe(false);
    expect(key.authorizes({ authorization: KEY })).toBe(false); // no scheme
    expect(key.authorizes({ authorization: `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}` })).toBe(false);
    expect(key.authorizes({ 'x-api-key': KEY })).toBe(false);
    expect(key.authorizes({ cookie: KEY })).toBe(false);
  });

  it('compares candidates of any length without throwing (digests, not the strings, are compared)', () => {
    // timingSafeEqual throws on buffers of different lengths: hashing first is what makes this work.
    for (const candidate of ['', 'a', KEY.slice(0, 5), KEY.repeat(50), 'ü'.repeat(17)]) {
      expect(key.matches(candidate)).toBe(false);
    }
    expect(key.matches(undefined)).toBe(false);
    expect(key.matches(KEY)).toBe(true);
    expect(() => new ApiKey('')).toThrow();
  });

  it('reads the token of a Bearer authorization (RFC 6750)', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('BEARER   abc')).toBe('abc');
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken('Token abc')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('--listen', () => {
  it('takes an IP address and a port, loopback or written out', () => {
    expect(parseListen('127.0.0.1:8025')).toEqual({ host: '127.0.0.1', port: 8025, loopback: true });
    expect(parseListen('[::1]:8025')).toEqual({ host: '::1', port: 8025, loopback: true });
    expect(parseListen('localhost:8025')).toEqual({ host: '127.0.0.1', port: 8025, loopback: true });
    expect(parseListen('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0, loopback: true });
    expect(parseListen('0.0.0.0:8025')).toEqual({ host: '0.0.0.0', port: 8025, loopback: false });
    expect(parseListen('192.0.2.10:80')).toEqual({ host: '192.0.2.10', port: 80, loopback: false });
    expect(parseListen('[::]:8025')).toEqual({ host: '::', port: 8025, loopback: false });
  });

  it('refuses a bare port, a host name, an unbracketed IPv6 address and a bad port', () => {
    for (const bad of ['8025', ':8025', 'example.com:8025', 'mailpoll.local:80', '::1:8025', '127.0.0.1', '127.0.0.1:65536', '127.0.0.1:80a', '[127.0.0.1]:80', '']) {
      const result = parseListen(bad);
      expect('error' in result, bad).toBe(true);
    }
    expect(parseListen('8025')).toMatchObject({ error: expect.stringContaining('0.0.0.0:8025') });
  });

  it('knows loopback addresses', () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('127.8.9.10')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopback('0.0.0.0')).toBe(false);
    expect(isLoopback('::')).toBe(false);
    expect(isLoopback('10.0.0.1')).toBe(false);
    expect(isLoopback('::ffff:10.0.0.1')).toBe(false);
  });
});
