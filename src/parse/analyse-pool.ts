import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { LARGE_MESSAGE_BYTES } from '../sources/mail-source.js';
import { analyse, type Analysis } from './analyse.js';

/**
 * Parsing (mailparser) is the largest piece of CPU work per message. A worker thread does it while
 * the main thread reads the network and writes SQLite, so the two overlap on a 2-core machine.
 * Large messages stay on the main thread: handing one over costs a copy of all of its bytes, and
 * the memory budget for a big message is twice its size, not three times.
 */
export interface Analyser {
  analyse(raw: Buffer): Promise<Analysis>;
  /** New mail is about to be fetched: start the worker now, so it is ready when the first message is in. */
  warm?(): void;
  /**
   * None of the mail about to be fetched goes to a worker (each message is large): end the ones
   * started, which hold some 25 MB beside the message. A later small message starts one again.
   */
  release?(): Promise<void>;
  close(): Promise<void>;
}

/** Messages above this size are analysed in place: the large messages of mail-source.ts. */
const IN_PLACE_BYTES = LARGE_MESSAGE_BYTES;

export const inThreadAnalyser: Analyser = { analyse, close: async () => {} };

/**
 * A pool of analysis workers; MAILPOLL_ANALYSE_WORKERS=0 turns it off (for debugging, or a
 * one-core machine). Workers start lazily, on the first message, so a run with no mail pays nothing.
 */
export function createAnalyser(size = defaultSize()): Analyser {
  if (size <= 0) return inThreadAnalyser;
  const workers: { worker: Worker; busy: number }[] = [];
  const pending = new Map<number, { resolve: (a: Analysis) => void; reject: (e: Error) => void; worker: Worker }>();
  let nextId = 0;
  let failed: Error | undefined;
  /** Workers ended by release(): their exit is no failure. */
  const released = new WeakSet<Worker>();

  const start = () => {
    const worker = new Worker(new URL('./analyse-worker.js', import.meta.url));
    const slot = { worker, busy: 0 };
    worker.on('message', (msg: { id: number; analysis?: Analysis; error?: string }) => {
      slot.busy -= 1;
      const waiter = pending.get(msg.id);
      pending.delete(msg.id);
      if (!waiter) return;
      if (msg.analysis) waiter.resolve(revive(msg.analysis));
      else waiter.reject(new Error(msg.error ?? 'analysis failed'));
    });
    const lost = (err: Error) => {
      // A crashed worker must not lose or stall a message: what it held is analysed in place.
      if (!released.has(worker)) failed ??= err;
      for (const [id, waiter] of pending) {
        if (waiter.worker !== worker) continue;
        pending.delete(id);
        waiter.reject(err);
      }
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`analysis worker exited with code ${code}`)));
    worker.unref();
    workers.push(slot);
    return slot;
  };

  return {
    async analyse(raw: Buffer): Promise<Analysis> {
      if (failed !== undefined || raw.length > IN_PLACE_BYTES) return analyse(raw);
      if (workers.length < size) start();
      const slot = workers.reduce((a, b) => (b.busy < a.busy ? b : a));
      const id = nextId++;
      // A copy the worker owns (transferred, not cloned again); `raw` itself is kept for the store.
      const copy = new Uint8Array(raw);
      slot.busy += 1;
      try {
        return await new Promise<Analysis>((resolve, reject) => {
          pending.set(id, { resolve, reject, worker: slot.worker });
          slot.worker.postMessage({ id, raw: copy }, [copy.buffer]);
        });
      } catch {
        return analyse(raw);
      }
    },
    warm() {
      if (failed === undefined && workers.length === 0) start();
    },
    async release() {
      const ending = workers.splice(0);
      for (const { worker } of ending) released.add(worker);
      await Promise.all(ending.map(({ worker }) => worker.terminate()));
    },
    async close() {
      failed ??= new Error('closed');
      await Promise.all(workers.map(({ worker }) => worker.terminate()));
      workers.length = 0;
    },
  };
}

function defaultSize(): number {
  const configured = process.env.MAILPOLL_ANALYSE_WORKERS;
  if (configured !== undefined && configured !== '') return Math.max(0, Number.parseInt(configured, 10) || 0);
  return Math.min(2, Math.max(1, availableParallelism() - 1));
}

/** Structured clone turns Buffers into plain Uint8Arrays; the store wants Buffers back. */
function revive(a: Analysis): Analysis {
  for (const att of a.parsed.attachments) {
    const c = att.content as Uint8Array;
    att.content = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  }
  return a;
}
