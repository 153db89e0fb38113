import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { MailpollError } from '../errors.js';

/**
 * `fetch --metrics-file PATH`: the file is written beside its final name (`PATH.tmp-PID`, which
 * node_exporter's textfile collector ignores, as it reads only `*.prom`), flushed, then renamed
 * over PATH. A rename within one directory is atomic, so a reader (the collector, or a second run
 * writing at the same time) sees the old file or the new one, never half of one.
 */
export function writeFileAtomically(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (cause) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was created, or it is gone already
    }
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    throw new MailpollError('STORE', `cannot write the metrics file ${path}: ${code} (the fetch itself ran; see the summary)`, { cause });
  }
}
