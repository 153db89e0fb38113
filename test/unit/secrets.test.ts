import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveSecret } from '../../src/config/secrets.js';
import { SecretError } from '../../src/errors.js';
import { registerSecret, scrub } from '../../src/log.js';

describe('resolveSecret', () => {
  it('interpolates ${VAR} from the environment and names a missing variable, not a value', async () => {
    expect(await resolveSecret({ kind: 'env', template: 'pre-${A}-${B}' }, 'm', { A: 'x', B: 'y' })).toBe('pre-x-y');
    await expect(resolveSecret({ kind: 'env', template: '${NOPE}' }, 'm', {})).rejects.toThrow(/NOPE is not set/);
  });

  it('reads the first line of passwordFile, without its newline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailpoll-secret-'));
    writeFileSync(join(dir, 'pw'), 's3cret\nsecond line is a comment\n');
    expect(await resolveSecret({ kind: 'file', path: join(dir, 'pw') }, 'm')).toBe('s3cret');
    await expect(resolveSecret({ kind: 'file', path: join(dir, 'missing') }, 'm')).rejects.toBeInstanceOf(SecretError);
  });

  it('takes the output of passwordCommand and never puts that output into an error', async () => {
    expect(await resolveSecret({ kind: 'command', command: 'printf "from-cmd\\n"' }, 'm')).toBe('from-cmd');
    const err = await resolveSecret({ kind: 'command', command: 'echo leaked-value; exit 3' }, 'm').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretError);
    expect((err as Error).message).toMatch(/exited with code 3/);
    expect((err as Error).message).not.toContain('leaked-value');
  });
});

describe('scrub', () => {
  it('masks every registered secret wherever it appears', () => {
    registerSecret('correct-horse-battery');
    expect(scrub('AUTH failed for correct-horse-battery (correct-horse-battery)')).toBe('AUTH failed for *** (***)');
  });
});
