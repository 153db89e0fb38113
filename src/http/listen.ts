import { isIP } from 'node:net';

/** Where `daemon --listen` binds. */
export interface ListenAddress {
  host: string;
  /** 0 asks the system for a free port; the one chosen is logged. */
  port: number;
  /** Only this machine can connect (127.0.0.0/8, ::1). */
  loopback: boolean;
}

/**
 * Parses `--listen`: an IP address and a port, `127.0.0.1:8025` or `[::1]:8025`. A bare port or a
 * host name is refused: the trigger must never end up reachable from a network because a default
 * or a name resolved to more than was meant. Binding beyond loopback takes the address written out
 * (`0.0.0.0:8025`, `192.0.2.10:8025`, `[::]:8025`); the caller warns about it. `localhost` is taken
 * to mean 127.0.0.1. Returns an error message (for a usage error) instead of throwing.
 */
export function parseListen(text: string): ListenAddress | { error: string } {
  const example = 'give an IP address and a port, e.g. --listen 127.0.0.1:8025 (or [::1]:8025)';
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return { error: `a bare port is not accepted: ${example}; binding beyond this machine needs the address written out, e.g. 0.0.0.0:${trimmed}` };
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(trimmed);
  if (match === null) return { error: `"${text}" is not an address and port: ${example}` };
  const port = Number(match[3]);
  if (port > 65535) return { error: `port ${port} is out of range (0..65535)` };
  const bracketed = match[1];
  let host = bracketed ?? match[2] ?? '';
  if (bracketed === undefined && host.toLowerCase() === 'localhost') host = '127.0.0.1';
  const family = isIP(host);
  if (family === 0) return { error: `"${host}" is not an IP address (host names are not accepted): ${example}` };
  if (bracketed !== undefined && family !== 6) return { error: `[${host}]: brackets are for IPv6 addresses only` };
  return { host, port, loopback: isLoopback(host) };
}

/** 127.0.0.0/8, ::1, and IPv4-mapped loopback (::ffff:127.x.y.z). */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  return /^(?:::|(?:0{1,4}:){5})ffff:127\./.test(h);
}

/** `127.0.0.1:8025`, `[::1]:8025`: for logs and messages. */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
