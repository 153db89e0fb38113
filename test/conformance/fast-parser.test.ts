/**
 * The fast MIME path (src/parse/mime-fast.ts) against mailparser on every file of the real-world
 * corpus, as stored and with CRLF line ends (as IMAP and POP3 serve it): whatever the fast path
 * takes must parse exactly as mailparser parses it. Opt-in like corpus.test.ts: MAILPOLL_CORPUS.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectSameAsMailparser } from '../support/same-as-mailparser.js';

const CORPUS = process.env.MAILPOLL_CORPUS;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return entry === '_licenses' ? [] : files(path);
    return /\.(md|py)$/i.test(entry) ? [] : [path];
  });
}

describe.skipIf(!CORPUS)('fast MIME path on the corpus', () => {
  it('parses every corpus message it takes exactly as mailparser does', async () => {
    let taken = 0;
    let total = 0;
    for (const path of files(CORPUS as string)) {
      const raw = readFileSync(path);
      const crlf = Buffer.from(raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
      for (const [variant, bytes] of [['as stored', raw], ['CRLF', crlf]] as const) {
        total += 1;
        if (await expectSameAsMailparser(bytes, `${path} (${variant})`)) taken += 1;
      }
    }
    console.log(`fast MIME path: took ${taken} of ${total} corpus messages (as stored and CRLF), all parsed as mailparser parses them`);
    // Most real mail is well-formed MIME; far fewer would mean the fast path declines too much.
    expect(taken).toBeGreaterThan(total / 2);
  }, 300_000);
});
