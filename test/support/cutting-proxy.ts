import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP relay on 127.0.0.1 in front of the test Dovecot that can cut every connection after the
 * server has sent a given number of bytes: a connection dropped mid-run, at a byte we choose.
 * TLS passes through untouched (the client verifies Dovecot's certificate end to end).
 */
export interface CuttingProxy {
  port: number;
  /** Cut connections once the server has sent this many bytes; undefined relays everything. */
  cutAfterServerBytes: number | undefined;
  cuts: number;
  close(): Promise<void>;
}

export async function startCuttingProxy(targetHost: string, targetPort: number): Promise<CuttingProxy> {
  const sockets = new Set<Socket>();
  const state: CuttingProxy = {
    port: 0,
    cutAfterServerBytes: undefined,
    cuts: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    sockets.add(client).add(upstream);
    let sent = 0;
    const limit = state.cutAfterServerBytes;
    upstream.on('data', (chunk: Buffer) => {
      if (limit !== undefined && sent + chunk.length >= limit) {
        client.write(chunk.subarray(0, Math.max(0, limit - sent)));
        state.cuts += 1;
        client.destroy();
        upstream.destroy();
        return;
      }
      sent += chunk.length;
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  state.port = typeof address === 'object' && address ? address.port : 0;
  return state;
}
