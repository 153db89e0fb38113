import { afterEach, describe, expect, it } from 'vitest';
import type { Analyser } from '../../src/parse/analyse-pool.js';
import { analyse } from '../../src/parse/analyse.js';
import { attachmentMessage, plainMessage } from '../fixtures/messages.js';

// The worker runs the built code (vitest does not run inside worker threads): `npm test` builds first.
const BUILT = '../../dist/parse/analyse-pool.js';
const { createAnalyser } = (await import(BUILT)) as typeof import('../../src/parse/analyse-pool.js');

describe('analysis worker', () => {
  let analyser: Analyser | undefined;
  afterEach(async () => {
    await analyser?.close();
    analyser = undefined;
  });

  it('gives what analysing in place gives, attachments as Buffers with their digest', async () => {
    analyser = createAnalyser(1);
    for (const raw of [plainMessage(), attachmentMessage()]) {
      const [there, here] = await Promise.all([analyser.analyse(raw), analyse(raw)]);
      expect(there.dedupeHash).toBe(here.dedupeHash);
      expect(there.parsed.text).toBe(here.parsed.text);
      expect(there.parsed.attachments.map((a) => [Buffer.isBuffer(a.content), a.content.toString('base64'), a.sha256]))
        .toEqual(here.parsed.attachments.map((a) => [true, a.content.toString('base64'), a.sha256]));
    }
  });

  it('after release() still analyses on a worker, started again, not in place for good', async () => {
    analyser = createAnalyser(1);
    analyser.warm?.();
    await analyser.release?.();
    const raw = attachmentMessage();
    const [there, here] = await Promise.all([analyser.analyse(raw), analyse(raw)]);
    expect(there.dedupeHash).toBe(here.dedupeHash);
    // Attachments come back from a worker as transferred buffers, each its own ArrayBuffer; in place
    // they are slices of a larger one.
    expect(there.parsed.attachments.every((a) => a.content.byteOffset === 0 && a.content.byteLength === a.content.buffer.byteLength)).toBe(true);
  });
});
