import { parentPort } from 'node:worker_threads';
import { errorMessage } from '../errors.js';
import { analyse, type Analysis } from './analyse.js';
import { loadParser } from './mime-fast.js';

/** Worker side of analyse-pool.ts: one message in, its Analysis out. */
type Request = { id: number; raw: Uint8Array };

// A worker is started when a poll finds new mail: the parser loads while the first messages
// download, not when the first message is already waiting for it. A failure here is the first
// message's to report (its analysis loads the parser again, and stores the message raw with the error).
loadParser().catch(() => {});

parentPort?.on('message', (request: Request) => {
  const raw = Buffer.from(request.raw.buffer, request.raw.byteOffset, request.raw.byteLength);
  analyse(raw).then(
    (analysis) => parentPort?.postMessage({ id: request.id, analysis }, transferable(analysis)),
    (err: unknown) => parentPort?.postMessage({ id: request.id, error: errorMessage(err) }),
  );
});

/**
 * Attachment bytes go back by transfer, not by copy on the main thread (which also writes SQLite
 * and reads the network). A Buffer that is a view into a larger one (Node's shared pool, the raw
 * message, an oversized decode buffer) is first copied into its own, here on the worker: structured
 * clone would copy the whole underlying buffer, and transferring it would detach the pool.
 */
function transferable(analysis: Analysis): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const attachment of analysis.parsed.attachments) {
    let { content } = attachment;
    if (content.byteOffset !== 0 || content.byteLength !== content.buffer.byteLength || !(content.buffer instanceof ArrayBuffer)) {
      content = Buffer.from(new Uint8Array(content).buffer);
      attachment.content = content;
    }
    out.push(content.buffer as ArrayBuffer);
  }
  return out;
}
