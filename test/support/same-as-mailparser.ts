import { expect } from 'vitest';
import { fastParse } from '../../src/parse/mime-fast.js';
import { mailparser, toParsed } from '../../src/parse/parse-message.js';
import type { ParsedMessage } from '../../src/parse/types.js';

/** Comparable form: attachment bytes as base64, and mailparser's "now" for a bad Date as a word. */
function comparable(p: ParsedMessage, parsedAt: number): unknown {
  const date = p.date === undefined ? undefined : p.date.getTime() >= parsedAt ? 'now (invalid Date header)' : p.date.toISOString();
  return { ...p, date, attachments: p.attachments.map((a) => ({ ...a, content: a.content.toString('base64') })) };
}

/**
 * Asserts that the fast MIME path, when it takes `raw`, gives exactly what mailparser gives
 * (src/parse/mime-fast.ts promises it). A message the fast path declines passes trivially.
 */
export async function expectSameAsMailparser(raw: Buffer, label: string): Promise<boolean> {
  const parsedAt = Date.now();
  const fast = await fastParse(raw);
  if (fast === undefined) return false;
  const reference = await mailparser(raw);
  expect(comparable(toParsed(raw, fast), parsedAt), label).toEqual(comparable(toParsed(raw, reference), parsedAt));
  return true;
}
