import { imapClientOptions } from './imap-options.js';
/**
 * `mailpoll test`: osTicket's "Fetch Now" check. Connects to one mailbox, reports the TLS session
 * and the server certificate, logs in, opens the folder and counts, and changes nothing: IMAP opens
 * the folder with EXAMINE (RFC 3501 section 6.3.2: no change to the mailbox, not even \Recent) and
 * asks STATUS before it (a client SHOULD NOT ask STATUS of the selected mailbox, section 6.3.10);
 * POP3 asks STAT and QUITs without any DELE or RETR, so the UPDATE state has nothing to apply
 * (RFC 1939 section 6). Nothing here touches the database.
 */
import { TLSSocket, type PeerCertificate } from 'node:tls';
import type { ImapFlow } from 'imapflow';
import { asCredentials, chooseImapMechanism, pop3Login, type Credentials } from '../auth/login.js';
import type { MailboxConfig, Protocol, TlsMode } from '../config/types.js';
import { MailpollError, ProtocolError, type ErrorCode } from '../errors.js';
import { folderFailure, imapFailure, type ImapErrorShape } from './imap-errors.js';
import { Pop3Client, socketTlsInfo, type TlsSessionInfo } from './pop3/client.js';
import { tlsOptionsFor } from './tls-options.js';

/** The steps of a probe, in order; a failed probe names the one that failed. */
export type ProbeStep = 'secret' | 'connect' | 'login' | 'folder' | 'count' | 'logout';

export interface CertificateReport {
  subject: string;
  issuer: string;
  /** e.g. "DNS:mail.example.org, IP Address:127.0.0.2"; null when absent. */
  subjectAltName: string | null;
  /** ISO 8601 UTC. */
  validFrom: string | null;
  validTo: string | null;
  /** Whole days from now until validTo; negative once expired. */
  daysUntilExpiry: number | null;
  fingerprint256: string | null;
}

export interface TlsReport {
  /** e.g. "TLSv1.3". */
  protocol: string;
  /** The IANA/RFC name when Node knows it (e.g. "TLS_AES_256_GCM_SHA384"), else OpenSSL's. */
  cipher: string;
  /** Whether the certificate chain and name verified (false only with insecureSkipVerify). */
  verified: boolean;
  certificate: CertificateReport | null;
}

export interface ImapCounts {
  protocol: 'imap';
  folder: string;
  messages: number;
  unseen: number;
  /** A decimal string: UIDVALIDITY is a 32-bit unsigned number, imapflow returns a bigint. */
  uidValidity: string;
  uidNext: number;
}

export interface Pop3Counts {
  protocol: 'pop3';
  messages: number;
  /** The maildrop size in octets, as STAT reports it. */
  bytes: number;
}

export interface ProbeError {
  code: ErrorCode | 'UNEXPECTED';
  message: string;
  serverResponse: string | null;
}

/** What `mailpoll test` learnt about one mailbox, as far as it got. Plain data, JSON-safe. */
export interface ProbeResult {
  mailbox: string;
  protocol: Protocol;
  host: string;
  port: number;
  tlsMode: TlsMode;
  username: string;
  ok: boolean;
  /** Present once a TLS session was up, also when a later step failed. */
  tls: TlsReport | null;
  loggedIn: boolean;
  counts: ImapCounts | Pop3Counts | null;
  /** IMAP: CAPABILITY after login (KEY or KEY=value); POP3: CAPA lines after STLS. */
  capabilities: string[];
  /** Weak settings and a certificate close to expiry: not failures, but worth a look. */
  warnings: string[];
  failedAt: ProbeStep | null;
  error: ProbeError | null;
  durationMs: number;
}

export interface ProbeOptions {
  /** The clock for the days until expiry. */
  now?: () => Date;
}

/** A certificate that expires within this many days gets a warning. */
const EXPIRY_WARNING_DAYS = 14;

/**
 * Probes one mailbox. Never throws: a failure is in the result with the step it happened at, and
 * everything learnt before it (a TLS session before a refused login, say) is kept.
 * `password` is sent to the server only; it is never put into the result.
 */
export async function probeMailbox(mailbox: MailboxConfig, password: string | Credentials, options: ProbeOptions = {}): Promise<ProbeResult> {
  const now = options.now ?? (() => new Date());
  const started = Date.now();
  const result = emptyProbe(mailbox);
  const probe = mailbox.protocol === 'imap' ? probeImap : probePop3;
  const step: { current: ProbeStep } = { current: 'connect' };
  try {
    await probe(mailbox, password, result, step, now);
    result.ok = true;
  } catch (err) {
    markFailed(result, step.current, err);
  }
  result.warnings.push(...expiryWarnings(result.tls));
  result.durationMs = Date.now() - started;
  return result;
}

/** The result for a mailbox that failed before any connection, e.g. at resolving its password. */
export function failedProbe(mailbox: MailboxConfig, step: ProbeStep, err: unknown): ProbeResult {
  const result = emptyProbe(mailbox);
  markFailed(result, step, err);
  return result;
}

function emptyProbe(mailbox: MailboxConfig): ProbeResult {
  const warnings: string[] = [];
  if (mailbox.tls.mode === 'none') warnings.push('tls: none: the password and all mail cross the network unencrypted');
  if (mailbox.tls.insecureSkipVerify) warnings.push('insecureSkipVerify: the server certificate is NOT verified; anyone on the path can read this mailbox');
  return {
    mailbox: mailbox.name,
    protocol: mailbox.protocol,
    host: mailbox.host,
    port: mailbox.port,
    tlsMode: mailbox.tls.mode,
    username: mailbox.username,
    ok: false,
    tls: null,
    loggedIn: false,
    counts: null,
    capabilities: [],
    warnings,
    failedAt: null,
    error: null,
    durationMs: 0,
  };
}

function markFailed(result: ProbeResult, step: ProbeStep, err: unknown): void {
  result.ok = false;
  result.failedAt = step;
  result.error = err instanceof MailpollError
    ? { code: err.code, message: err.message, serverResponse: err.serverResponse ?? null }
    : { code: 'UNEXPECTED', message: err instanceof Error ? err.message : String(err), serverResponse: null };
}

// ---- IMAP ------------------------------------------------------------------------------------

/** What imapflow logs when a TLS session is up (implicit TLS: 'connection'; STARTTLS: 'tls'). */
interface ImapLogEntry {
  src?: string;
  secure?: boolean;
}

async function probeImap(mailbox: MailboxConfig, password: string | Credentials, result: ProbeResult, step: { current: ProbeStep }, now: () => Date): Promise<void> {
  const { ImapFlow } = await import('imapflow');
  const tls = await tlsOptionsFor(mailbox);
  // imapflow's connect() covers TCP, TLS, the greeting and LOGIN in one call. Its log entry for an
  // established TLS session is the one moment the socket can be read before LOGIN, so a refused
  // login still reports the TLS session. Every other log entry is dropped.
  const captureTls = (entry: ImapLogEntry | undefined): void => {
    if (entry?.src === 'tls' || (entry?.src === 'connection' && entry.secure === true)) {
      const socket = (client as unknown as { socket?: unknown }).socket;
      if (socket instanceof TLSSocket) result.tls = tlsReport(socketTlsInfo(socket), now());
    }
  };
  const client: ImapFlow = new ImapFlow({
    ...imapClientOptions(mailbox, asCredentials(password), tls),
    logger: { debug: () => {}, info: captureTls, warn: () => {}, error: () => {}, fatal: () => {} },
  });
  // imapflow emits 'error' on socket failures; unhandled it would crash the whole run.
  client.on('error', () => {});
  try {
    try {
      chooseImapMechanism(client, mailbox, asCredentials(password));
      await client.connect();
    } catch (err) {
      // What the server offered before the refusal (LOGINDISABLED, AUTH=...) helps to explain it.
      result.capabilities = imapCapabilities(client);
      if ((err as ImapErrorShape).authenticationFailed) step.current = 'login';
      throw imapFailure(err, mailbox, step.current === 'login' ? 'LOGIN' : 'connect');
    }
    result.loggedIn = true;
    if (result.tls === null) {
      const socket = (client as unknown as { socket?: unknown }).socket;
      if (socket instanceof TLSSocket) result.tls = tlsReport(socketTlsInfo(socket), now());
    }
    // After LOGIN: a server may announce more (or other) capabilities once authenticated.
    result.capabilities = imapCapabilities(client);

    step.current = 'folder';
    let status;
    try {
      status = await client.status(mailbox.folder, { unseen: true });
    } catch (err) {
      throw folderFailure(err, mailbox, 'STATUS');
    }
    if (status === false || status.unseen === undefined) {
      throw new ProtocolError(`STATUS ${mailbox.folder} gave no UNSEEN count`, { mailbox: mailbox.name });
    }
    let opened;
    try {
      // EXAMINE: read-only, whatever the mailbox's `after` says.
      opened = await client.mailboxOpen(mailbox.folder, { readOnly: true });
    } catch (err) {
      throw folderFailure(err, mailbox, 'EXAMINE');
    }
    result.counts = {
      protocol: 'imap',
      folder: opened.path,
      messages: opened.exists,
      unseen: status.unseen,
      uidValidity: String(opened.uidValidity),
      uidNext: opened.uidNext,
    };

    step.current = 'logout';
    await client.logout();
  } finally {
    client.close();
  }
}

function imapCapabilities(client: ImapFlow): string[] {
  return [...client.capabilities].map(([name, value]) => (typeof value === 'number' ? `${name}=${value}` : name));
}

// ---- POP3 ------------------------------------------------------------------------------------

async function probePop3(mailbox: MailboxConfig, password: string | Credentials, result: ProbeResult, step: { current: ProbeStep }, now: () => Date): Promise<void> {
  const client = await Pop3Client.connect({ mailbox });
  try {
    const info = client.tlsInfo();
    if (info !== undefined) result.tls = tlsReport(info, now());
    result.capabilities = [...client.capabilities].map(([name, args]) => [name, ...args].join(' '));

    step.current = 'login';
    await pop3Login(client, mailbox.username, asCredentials(password));
    result.loggedIn = true;

    step.current = 'count';
    const stat = await client.stat();
    result.counts = { protocol: 'pop3', messages: stat.count, bytes: stat.size };

    // No DELE was sent, so QUIT's UPDATE state removes nothing (RFC 1939 section 6).
    step.current = 'logout';
    await client.quit();
  } finally {
    client.destroy();
  }
}

// ---- TLS -------------------------------------------------------------------------------------

/** The TLS session in plain words; `now` is the reference for the days until expiry. */
export function tlsReport(info: TlsSessionInfo, now: Date): TlsReport {
  const cert = info.certificate;
  return {
    protocol: info.protocol ?? info.cipher.version,
    cipher: info.cipher.standardName ?? info.cipher.name,
    verified: info.authorized,
    certificate: cert === undefined ? null : certificateReport(cert, now),
  };
}

function certificateReport(cert: PeerCertificate, now: Date): CertificateReport {
  const validTo = parseCertDate(cert.valid_to);
  return {
    subject: distinguishedName(cert.subject),
    issuer: distinguishedName(cert.issuer),
    subjectAltName: cert.subjectaltname ?? null,
    validFrom: parseCertDate(cert.valid_from)?.toISOString() ?? null,
    validTo: validTo?.toISOString() ?? null,
    daysUntilExpiry: validTo === undefined ? null : Math.floor((validTo.getTime() - now.getTime()) / 86_400_000),
    fingerprint256: cert.fingerprint256 ?? null,
  };
}

/** "O=Example, CN=mail.example.org", in the certificate's order; a repeated attribute repeats. */
function distinguishedName(dn: PeerCertificate['subject'] | undefined): string {
  if (dn === undefined || dn === null) return '';
  return Object.entries(dn as unknown as Record<string, string | string[] | undefined>)
    .flatMap(([key, value]) => (value === undefined ? [] : (Array.isArray(value) ? value : [value]).map((v) => `${key}=${v}`)))
    .join(', ');
}

/** OpenSSL's "Mar  4 10:00:00 2026 GMT". */
function parseCertDate(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

function expiryWarnings(tls: TlsReport | null): string[] {
  const days = tls?.certificate?.daysUntilExpiry;
  if (days === undefined || days === null) return [];
  if (days < 0) return [`the server certificate expired ${-days} day(s) ago`];
  if (days <= EXPIRY_WARNING_DAYS) return [`the server certificate expires in ${days} day(s): renew it soon`];
  return [];
}
