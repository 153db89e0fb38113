import { z } from 'zod';
import { parseBytes, parseDuration } from './duration.js';

/**
 * The shape of the YAML file. Strict objects everywhere: an unknown key is a typo until proven
 * otherwise, and a typo in `after:` must not silently fall back to a default.
 */
const duration = z
  .union([z.number(), z.string()])
  .refine((v) => parseDuration(v) !== undefined, { message: 'expected a duration such as 30s, 5m or 1h' });

const bytes = z
  .union([z.number(), z.string()])
  .refine((v) => parseBytes(v) !== undefined, { message: 'expected a size such as 10485760, 512KB or 50MB' });

/** A dead-man ping target: an absolute http(s) URL (healthchecks.io style). */
/** An IMAP folder name: no line break or NUL can be in one (RFC 3501 section 5.1), nor in a command line. */
const folderName = z.string().min(1).refine((v) => !/[\r\n\0]/.test(v), { message: 'a folder name cannot contain a line break or NUL' });
const httpUrl = z.string().refine(isHttpUrl, { message: 'expected an http:// or https:// URL, e.g. https://hc-ping.com/<uuid>' });

function isHttpUrl(v: string): boolean {
  try {
    return /^https?:$/.test(new URL(v).protocol);
  } catch {
    return false;
  }
}

const mailboxFields = {
  protocol: z.enum(['imap', 'pop3']),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  tls: z.enum(['implicit', 'starttls', 'none']),
  allowPlaintext: z.boolean(),
  insecureSkipVerify: z.boolean(),
  ca: z.string().min(1),
  username: z.string().min(1),
  password: z.string().min(1),
  passwordFile: z.string().min(1),
  passwordCommand: z.string().min(1),
  oauth2: z.strictObject({
    mechanism: z.enum(['xoauth2', 'oauthbearer']),
    tokenCommand: z.string().min(1),
    tokenFile: z.string().min(1),
    tokenUrl: z.string().min(1),
    clientId: z.string().min(1),
    clientSecret: z.string().min(1),
    clientSecretFile: z.string().min(1),
    clientSecretCommand: z.string().min(1),
    scope: z.string().min(1),
    refreshToken: z.string().min(1),
    refreshTokenFile: z.string().min(1),
    refreshTokenCommand: z.string().min(1),
  }).partial(),
  folder: folderName,
  after: z.enum(['seen', 'move', 'delete', 'keep']),
  moveTo: folderName,
  maxMessages: z.number().int().min(1),
  maxMessageBytes: bytes,
  maxBytes: bytes,
  oversize: z.enum(['skip', 'headers']),
  every: duration,
  healthWindow: duration,
  idle: z.boolean(),
  autoReplies: z.enum(['open', 'thread', 'store']),
  bounces: z.enum(['open', 'thread', 'store']),
  timeouts: z.strictObject({ connect: duration.optional(), command: duration.optional() }),
};

export type MailboxInput = { name: string } & Partial<{
  [K in keyof typeof mailboxFields]: z.infer<(typeof mailboxFields)[K]>;
}>;

/** `defaults:` takes any mailbox key but `name`. */
export const defaultsSchema = z.strictObject(mailboxFields).partial();

/** A mailbox after `defaults:` were merged in; protocol, host and username are required. */
export const mailboxSchema = z.strictObject({
  name: z.string().min(1),
  ...mailboxFields,
}).partial().required({ name: true, protocol: true, host: true, username: true });

export const fileSchema = z.strictObject({
  database: z.string().min(1).optional(),
  tickets: z
    .strictObject({
      token: z.string().includes('NUMBER', { message: 'the token must contain NUMBER, e.g. [#NUMBER]' }).optional(),
      loopGuard: z.strictObject({ max: z.number().int().min(1).optional(), window: duration.optional() }).optional(),
    })
    .optional(),
  http: z
    .strictObject({ apiKey: z.string().min(1), apiKeyFile: z.string().min(1), apiKeyCommand: z.string().min(1) })
    .partial()
    .optional(),
  pings: z
    .strictObject({ success: httpUrl, failure: httpUrl.optional(), timeout: duration.optional() })
    .optional(),
  defaults: z.record(z.string(), z.unknown()).optional(),
  mailboxes: z.array(z.record(z.string(), z.unknown())).min(1, { message: 'at least one mailbox is needed' }),
});
