import { parentPort } from 'node:worker_threads';
import { errorMessage } from '../errors.js';
import { analyse } from './analyse.js';

/** Worker side of analyse-pool.ts: one message in, its Analysis out. */
interface Request {
  id: number;
  raw: Uint8Array;
}

parentPort?.on('message', (request: Request) => {
  const raw = Buffer.from(request.raw.buffer, request.raw.byteOffset, request.raw.byteLength);
  analyse(raw).then(
    (analysis) => parentPort?.postMessage({ id: request.id, analysis }),
    (err: unknown) => parentPort?.postMessage({ id: request.id, error: errorMessage(err) }),
  );
});
