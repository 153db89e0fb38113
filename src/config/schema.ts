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
  folder: z.string().min(1),
  after: z.enum(['seen', 'move', 'delete', 'keep']),
  moveTo: z.string().min(1),
  maxMessages: z.number().int().min(1),
  maxMessageBytes: bytes,
  maxBytes: bytes,
  oversize: z.enum(['skip', 'headers']),
  every: duration,
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
  defaults: z.record(z.string(), z.unknown()).optional(),
  mailboxes: z.array(z.record(z.string(), z.unknown())).min(1, { message: 'at least one mailbox is needed' }),
});
