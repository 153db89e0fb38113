import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { SecretError } from '../errors.js';
import type { SecretRef } from './types.js';

/**
 * Resolves a secret at poll time, so one mailbox with a broken secret fails alone.
 * Errors name where the secret should have come from, never its value.
 */
export async function resolveSecret(ref: SecretRef, mailbox: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  switch (ref.kind) {
    case 'literal':
      return ref.value;
    case 'env':
      return ref.template.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
        const value = env[name];
        if (value === undefined) throw new SecretError(`environment variable ${name} is not set`, { mailbox });
        return value;
      });
    case 'file':
      try {
        // The first line: a trailing newline or a comment line after it never becomes part of it.
        return (await readFile(ref.path, 'utf8')).split(/\r?\n/)[0] ?? '';
      } catch (cause) {
        throw new SecretError(`cannot read ${ref.path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { mailbox, cause });
      }
    case 'command':
      return trimNewline(await runCommand(ref.command, mailbox));
  }
}

function runCommand(command: string, mailbox: string): Promise<string> {
  const [shell, flag] = process.platform === 'win32' ? ['cmd.exe', '/c'] : ['/bin/sh', '-c'];
  return new Promise((resolveOut, reject) => {
    execFile(shell, [flag, command], { timeout: 30_000, maxBuffer: 64 * 1024, windowsHide: true }, (err, stdout) => {
      // The command's output may be the secret itself: it never goes into the message.
      if (err) {
        const why = err.killed ? 'timed out after 30 s' : `exited with code ${String(err.code ?? 'unknown')}`;
        reject(new SecretError(`the command ${why}`, { mailbox }));
      } else if (stdout.trim() === '') {
        reject(new SecretError('the command printed nothing', { mailbox }));
      } else {
        resolveOut(stdout);
      }
    });
  });
}

function trimNewline(s: string): string {
  return s.replace(/\r?\n$/, '');
}
