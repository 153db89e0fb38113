import { connect } from 'node:tls';

/**
 * A session that does no client work at all: TLS, login, the one command a poll that finds
 * nothing new must send (POP3 `UIDL`, IMAP `SELECT`), logout. Timed from connect to the answer's
 * last byte, it is the server's share of such a poll, and how it grows from 100 to 10,000 stored
 * messages is what any client pays for a larger mailbox (Dovecot opens and lists the maildrop).
 */
export async function bareSession(protocol: 'imap' | 'pop3', target: { host: string; port: number; ca: Buffer; user: string; password: string }): Promise<number> {
  const started = performance.now();
  const socket = connect({ host: target.host, port: target.port, ca: target.ca, servername: 'localhost' });
  let text = '';
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    wake?.();
  });
  const fail = (err: Error) => {
    failure ??= err;
    wake?.();
  };
  socket.on('error', fail);
  socket.on('close', () => fail(new Error('the server closed the connection')));
  /** Waits until the text read so far matches `end`, and returns it. */
  const until = async (end: RegExp): Promise<string> => {
    while (!end.test(text)) {
      if (failure !== undefined) throw failure;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    const got = text;
    text = '';
    return got;
  };
  const expect = (got: string, ok: RegExp, what: string) => {
    if (!ok.test(got)) throw new Error(`bare ${protocol} session: ${what} answered ${got.slice(0, 80).trim()}`);
  };
  try {
    if (protocol === 'pop3') {
      expect(await until(/\r\n$/), /^\+OK/, 'greeting');
      socket.write(`USER ${target.user}\r\n`);
      expect(await until(/\r\n$/), /^\+OK/, 'USER');
      socket.write(`PASS ${target.password}\r\n`);
      expect(await until(/\r\n$/), /^\+OK/, 'PASS');
      socket.write('UIDL\r\n');
      expect(await until(/(^|\r\n)\.\r\n$|^-ERR.*\r\n$/), /^\+OK/, 'UIDL');
      const elapsed = performance.now() - started;
      socket.write('QUIT\r\n');
      return elapsed;
    }
    expect(await until(/\r\n$/), /^\* OK/, 'greeting');
    socket.write(`a1 LOGIN "${target.user}" "${target.password}"\r\n`);
    expect(await until(/(^|\r\n)a1 [A-Z]+[^\r\n]*\r\n$/), /(^|\r\n)a1 OK/, 'LOGIN');
    socket.write('a2 SELECT INBOX\r\n');
    expect(await until(/(^|\r\n)a2 [A-Z]+[^\r\n]*\r\n$/), /(^|\r\n)a2 OK/, 'SELECT');
    const elapsed = performance.now() - started;
    socket.write('a3 LOGOUT\r\n');
    return elapsed;
  } finally {
    socket.end();
    socket.destroy();
  }
}
