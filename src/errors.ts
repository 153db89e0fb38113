/**
 * The error classes a user can meet. The core throws them; only src/cli turns them into text and
 * exit codes. Each carries a string `code`, the mailbox it concerns (when there is one) and the
 * underlying cause, so a log line can say what failed, where, and why.
 */
export type ErrorCode =
  | 'CONFIG'
  | 'SECRET'
  | 'CONNECTION'
  | 'TLS'
  | 'AUTH'
  | 'PROTOCOL'
  | 'TIMEOUT'
  | 'FOLDER'
  | 'STORE'
  | 'TOKEN';

export interface ErrorDetails {
  mailbox?: string;
  cause?: unknown;
  /** What the server answered, when the failure is the server's refusal. */
  serverResponse?: string;
}

export class MailpollError extends Error {
  readonly code: ErrorCode;
  readonly mailbox: string | undefined;
  readonly serverResponse: string | undefined;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    this.mailbox = details.mailbox;
    this.serverResponse = details.serverResponse;
  }
}

/** One problem in the configuration, located in its file. */
export interface ConfigProblem {
  file: string;
  line: number | undefined;
  column: number | undefined;
  /** Dotted path of the field, e.g. `mailboxes[1].port`. */
  field: string;
  message: string;
}

export class ConfigError extends MailpollError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[], details: ErrorDetails = {}) {
    super('CONFIG', problems.map(formatConfigProblem).join('\n'), details);
    this.problems = problems;
  }
}

export function formatConfigProblem(p: ConfigProblem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}${p.column === undefined ? '' : `:${p.column}`}`;
  return `${where}: ${p.field}: ${p.message}`;
}

/** A password, token or command that could not be resolved. Never carries the secret itself. */
export class SecretError extends MailpollError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('SECRET', message, details);
  }
}

/** The server could not be reached, or the connection broke. Retrying later may help. */
export class ConnectionError extends MailpollError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('CONNECTION', message, details);
  }
}

/** TLS could not be established or the certificate did not verify. Never downgraded. */
export class TlsError extends MailpollError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('TLS', message, details);
  }
}

/** The server refused the credentials. */
export class AuthError extends MailpollError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('AUTH', message, details);
  }
}

/** The server said something we did not expect, or refused a command. */
export class ProtocolError extends MailpollError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('PROTOCOL', message, details);
  }
}

/** The server did not answer within the configured time. */
export class TimeoutError extends MailpollError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('TIMEOUT', message, details);
  }
}

/** The configured folder does not exist or cannot be opened. */
export class FolderError extends MailpollError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('FOLDER', message, details);
  }
}

/** The database refused a write. */
export class StoreError extends MailpollError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('STORE', message, details);
  }
}

/**
 * An OAuth2 access token could not be obtained (token command, token file, token endpoint). The
 * message names the mailbox, the step and what the server said; never a token or client secret.
 */
export class TokenError extends MailpollError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('TOKEN', message, details);
  }
}

/** The message of an unknown thrown value, for logs. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
