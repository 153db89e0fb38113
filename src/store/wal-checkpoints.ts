import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints of a fetch run, off the thread that writes. A run turns SQLite's automatic
 * checkpoint off (it would copy the WAL into the database file inside a commit, on the thread
 * that also reads the network) and asks for one here after each group commit instead.
 */
export interface WalCheckpoints {
  /** A commit grew the WAL: checkpoint it soon. Requests made while one runs become one more. */
  afterCommit(): void;
  /** Waits for the checkpoint in progress, if any, and ends the thread. Later requests are ignored. */
  close(): Promise<void>;
}

/**
 * Checkpoints of `file` on a thread of its own, started at the first request. When the thread
 * cannot start or dies, `unavailable` is called once: the writer should checkpoint itself again.
 */
export function walCheckpoints(file: string, unavailable: () => void, script = new URL('./checkpoint-worker.js', import.meta.url)): WalCheckpoints {
  let worker: Worker | undefined;
  let running = false;
  let again = false;
  let failed = false;
  let closing = false;
  let closed: (() => void) | undefined;

  const send = () => {
    running = true;
    again = false;
    worker?.postMessage({ checkpoint: file });
  };
  const start = (): Worker => {
    const w = new Worker(script);
    w.unref();
    w.on('message', (msg: { done?: true; closed?: true }) => {
      if (msg.closed) return closed?.();
      running = false;
      if (again && !closing) send();
    });
    const lost = () => {
      if (failed || closing) return;
      failed = true;
      unavailable();
    };
    w.on('error', lost);
    w.on('exit', lost);
    return w;
  };

  return {
    afterCommit() {
      if (failed || closing) return;
      worker ??= start();
      if (running) again = true;
      else send();
    },
    async close() {
      closing = true;
      const w = worker;
      if (w === undefined) return;
      if (!failed) {
        // A request still waiting is dropped: closing the database checkpoints what is left.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2000);
          closed = () => {
            clearTimeout(timer);
            resolve();
          };
          w.postMessage({ close: true });
        });
      }
      await w.terminate();
    },
  };
}
