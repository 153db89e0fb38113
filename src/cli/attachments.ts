import { closeSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { configPath, loadConfig } from '../config/load.js';
import { MailpollError } from '../errors.js';
import { safeFilename, uniquePath } from '../files/safe-filename.js';
import { openDatabase } from '../store/database.js';
import { attachmentContent } from '../store/ticket-queries.js';
import { EXIT } from './exit-codes.js';
import type { GlobalOptions } from './main.js';

/** Extensions for a nameless attachment, so the saved file opens with the right program. */
const EXTENSIONS: Record<string, string> = {
  'application/pdf': '.pdf',
  'application/zip': '.zip',
  'application/json': '.json',
  'application/msword': '.doc',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': '.docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': '.xlsx',
  'image/png': '.png',
  'image/jpeg': '.jpg',
  'image/gif': '.gif',
  'image/webp': '.webp',
  'text/plain': '.txt',
  'text/html': '.html',
  'text/csv': '.csv',
  'text/calendar': '.ics',
  'message/rfc822': '.eml',
  'message/delivery-status': '.txt',
};

/** Tries before giving up when other writers keep taking the free name first. */
const ATTEMPTS = 100;

/**
 * `mailpoll attachments save ID --out DIR`: writes the attachment's bytes into DIR under
 * `safeFilename` of the sender's name. Each try takes the first free name and creates it with
 * O_CREAT|O_EXCL (`wx`), so an existing file, or a symlink planted under that name, is never
 * written through, even when something else creates files in DIR at the same moment.
 * Prints the path written on stdout; a note on stderr when the sender's name had to change.
 */
export async function attachmentsSaveCommand(opts: GlobalOptions & { id: number; out: string }): Promise<number> {
  const config = loadConfig(configPath(opts.config));
  const db = openDatabase(config.database);
  let attachment;
  try {
    attachment = attachmentContent(db, opts.id);
  } finally {
    db.close();
  }
  if (attachment === undefined) {
    throw new MailpollError('STORE', `there is no attachment with id ${opts.id}; \`mailpoll tickets show NUMBER\` lists a ticket's attachments with their ids`);
  }

  const name = safeFilename(attachment.filename ?? undefined, `attachment-${opts.id}${EXTENSIONS[attachment.contentType.toLowerCase()] ?? '.bin'}`);
  try {
    mkdirSync(opts.out, { recursive: true });
  } catch (err) {
    throw new MailpollError('STORE', `cannot create the directory ${opts.out}: ${(err as Error).message}`, { cause: err });
  }
  const written = writeNew(opts.out, name, attachment.content);
  if (attachment.filename !== null && attachment.filename !== name) {
    process.stderr.write(`mailpoll: the attachment's name ${JSON.stringify(attachment.filename)} is not a safe file name; saved as ${JSON.stringify(name)}\n`);
  }
  process.stdout.write(`${written}\n`);
  return EXIT.OK;
}

function writeNew(dir: string, name: string, content: Buffer): string {
  for (let i = 0; i < ATTEMPTS; i += 1) {
    const path = uniquePath(dir, name);
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new MailpollError('STORE', `cannot create ${path}: ${(err as Error).message}`, { cause: err });
    }
    let failure: unknown;
    try {
      writeFileSync(fd, content);
    } catch (err) {
      failure = err;
    } finally {
      closeSync(fd);
    }
    if (failure !== undefined) {
      // The file is ours (we created it): leave no truncated copy behind.
      rmSync(path, { force: true });
      throw new MailpollError('STORE', `cannot write ${path}: ${(failure as Error).message}`, { cause: failure });
    }
    return path;
  }
  throw new MailpollError('STORE', `cannot find a free file name for ${JSON.stringify(name)} in ${dir}: it keeps being taken`);
}
