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

/** Where a mailbox's OAuth2 access token comes from (see src/auth/oauth2.ts). */
export type OAuth2Source =
  /** `tokenCommand`: prints a current access token. */
  | { kind: 'tokenCommand'; token: SecretRef & { kind: 'command' } }
  /** `tokenFile`: its first line is a current access token (kept fresh by another tool). */
  | { kind: 'tokenFile'; token: SecretRef & { kind: 'file' } }
  /** Client-credentials grant (RFC 6749 section 4.4), e.g. Microsoft 365 app-only access. */
  | { kind: 'clientCredentials'; tokenUrl: string; clientId: string; clientSecret: SecretRef; scope: string | undefined }
  /** Refresh-token grant (RFC 6749 section 6); a rotated refresh token is kept in the database. */
  | { kind: 'refreshToken'; tokenUrl: string; clientId: string; clientSecret: SecretRef | undefined; refreshToken: SecretRef; scope: string | undefined };

export interface OAuth2Settings {
  /** SASL mechanism; POP3 has only xoauth2. */
  mechanism: 'xoauth2' | 'oauthbearer';
  source: OAuth2Source;
}

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
  /** The login password; undefined exactly when `oauth2` is set. */
  password: SecretRef | undefined;
  /** `oauth2:`: log in with an access token (XOAUTH2/OAUTHBEARER) instead of a password. */
  oauth2?: OAuth2Settings | undefined;
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
  /**
   * `healthWindow`: how long after its last success a mailbox still counts as healthy (/health,
   * metrics); undefined for the default, max(3 × every, every + 5m) (src/http/health.ts).
   */
  healthWindowMs: number | undefined;
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
  /** `http:`: the key `daemon --listen` requires; undefined when the config has no `http:`. */
  http: { apiKey: SecretRef } | undefined;
  /** `pings:`: dead-man pings after each run; undefined when not configured. */
  pings: { successUrl: string; failureUrl: string; timeoutMs: number } | undefined;
}
