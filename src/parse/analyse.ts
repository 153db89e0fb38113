import { classify, type Classification } from './classify.js';
import { parseMessage } from './parse-message.js';
import { dedupeHash, sha256 } from './raw-headers.js';
import type { ParsedMessage } from './types.js';

/** Everything the store needs to know about a message's bytes, computed apart from any I/O. */
export interface Analysis {
  parsed: ParsedMessage;
  classification: Classification;
  dedupeHash: string;
  /** sha256 of the raw bytes, for messages.raw_sha256. */
  rawSha256: string;
}

/** Parse, classify and hash: pure CPU work, so it can run on a worker thread (analyse-pool.ts). */
export async function analyse(raw: Buffer): Promise<Analysis> {
  const parsed = await parseMessage(raw);
  for (const a of parsed.attachments) a.sha256 = sha256(a.content);
  return { parsed, classification: classify(raw, parsed), dedupeHash: dedupeHash(raw), rawSha256: sha256(raw) };
}
