/** The normalised configuration: every default applied, every path absolute. */

export type Protocol = 'imap' | 'pop3';
export type TlsMode = 'implicit' | 'starttls' | 'none';
export type ImapAfter = 'seen' | 'move' | 'delete' | 'keep';
export type Pop3After = 'keep' | 'delete';

/** Where a secret comes from. Resolved only when the mailbox is polled, never logged. */
export type SecretRef =
  | { kind: 'literal'; value: string }
  | { kind: 'env'; template: string }
  | { kind: 'file'; path: string }
  | { kind: 'command'; command: string };

export interface TlsSettings {
  mode: TlsMode;
  /** Extra CA certificates (PEM), added to Node's bundled roots. */
  caFile: string | undefined;
  /** Certificate checks switched off: an explicit, loudly logged opt-out. */
  insecureSkipVerify: boolean;
  /** Only meaningful with mode 'none': the user accepts a plaintext session. */
  allowPlaintext: boolean;
}

export interface Timeouts {
  /** TCP connect plus TLS handshake plus greeting, in milliseconds. */
  connectMs: number;
  /** Any single command's reply, in milliseconds. */
  commandMs: number;
}

export interface MailboxConfig {
  name: string;
  protocol: Protocol;
  host: string;
  port: number;
  tls: TlsSettings;
  username: string;
  password: SecretRef;
  /** IMAP only. */
  folder: string;
  after: ImapAfter | Pop3After;
  /** IMAP `after: move` only. */
  moveTo: string | undefined;
  maxMessages: number;
  maxMessageBytes: number;
  /** Per-run cap on bytes fetched from this mailbox. */
  maxBytes: number;
  /** A message over maxMessageBytes: left on the server and reported, or stored with its headers only. */
  oversize: 'skip' | 'headers';
  /** How often the mailbox is due, in milliseconds. */
  everyMs: number;
  /** IMAP only, daemon only: wait with IMAP IDLE and fetch new mail within seconds. */
  idle: boolean;
  /** What auto-replies and bounces may do: open a ticket, only join an existing one, or neither. */
  policy: { autoReplies: 'open' | 'thread' | 'store'; bounces: 'open' | 'thread' | 'store' };
  timeouts: Timeouts;
}

export interface Config {
  /** Absolute path of the file this came from. */
  file: string;
  /** Absolute path of the SQLite database. */
  database: string;
  mailboxes: MailboxConfig[];
  tickets: {
    /** Subject token that names a ticket, NUMBER standing for its number. */
    token: string;
    loopGuard: { max: number; windowMs: number };
  };
}
