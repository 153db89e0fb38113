import type { DovecotServer } from './dovecot.js';

export type Variant = { protocol: 'imap' | 'pop3'; tls: 'starttls' | 'implicit' };

export const VARIANTS: Variant[] = [
  { protocol: 'imap', tls: 'starttls' },
  { protocol: 'imap', tls: 'implicit' },
  { protocol: 'pop3', tls: 'starttls' },
  { protocol: 'pop3', tls: 'implicit' },
];

export function portFor(server: DovecotServer, v: Variant): number {
  if (v.protocol === 'imap') return v.tls === 'implicit' ? server.ports.imaps : server.ports.imap;
  return v.tls === 'implicit' ? server.ports.pop3s : server.ports.pop3;
}

let users = 0;
/** A fresh mailbox user per test keeps tests in one file apart. */
export async function newUser(server: DovecotServer, prefix = 'u'): Promise<{ user: string; password: string }> {
  users += 1;
  const user = `${prefix}${users}x${process.pid}`;
  const password = `pw-${user}-Secret!`;
  await server.addUser(user, password);
  return { user, password };
}

/** One mailbox entry for a test config, pointed at the test Dovecot and trusting its CA. */
export function mailboxEntry(
  server: DovecotServer,
  v: Variant,
  user: { user: string; password: string },
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    name: `${v.protocol}-${v.tls}-${user.user}`,
    protocol: v.protocol,
    host: server.host,
    port: portFor(server, v),
    tls: v.tls,
    ca: server.caFile,
    username: user.user,
    password: user.password,
    maxMessages: 1000,
    timeouts: { connect: '10s', command: '20s' },
    ...extra,
  };
}
