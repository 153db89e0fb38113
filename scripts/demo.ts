/**
 * `npm run demo`: the main job end to end on a throwaway local mail server. Starts a private
 * Dovecot on 127.0.0.2, delivers sample mail to two mailboxes (one read over IMAP, one over
 * POP3), runs the real `mailpoll fetch` on it, shows the tickets it made, and stops the server.
 * The config and the database stay in .demo/ to look at afterwards.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alternativeMessage, attachmentMessage, encodedSubjectMessage, latin1Message, plainMessage } from '../test/fixtures/messages.js';
import { dovecotAvailable, startDovecot } from '../test/support/dovecot.js';
import { BIN, query, REPO_ROOT } from '../test/support/mailpoll.js';

const root = REPO_ROOT;
const demoDir = join(root, '.demo');

// The private Dovecot runs mail as an unprivileged user it creates, and installing it needs apt-get.
if (process.getuid?.() !== 0) {
  console.error('The demo runs a private Dovecot, which needs root. Run it as root (e.g. `sudo npm run demo`).');
  if (!dovecotAvailable()) console.error('It also needs Dovecot: apt-get install dovecot-imapd dovecot-pop3d openssl');
  process.exit(1);
}
if (!dovecotAvailable()) {
  console.log('Dovecot is missing: installing it with apt-get…');
  const r = spawnSync('bash', [join(root, 'scripts/install-deps.sh')], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
}

rmSync(demoDir, { recursive: true, force: true });
mkdirSync(demoDir, { recursive: true });
console.log('Starting a private Dovecot on 127.0.0.2…');
const server = await startDovecot();
try {
  await server.addUser('support', 'demo-support-pw');
  await server.addUser('sales', 'demo-sales-pw');
  const first = 'printer-1@customer.example';
  await server.deliver('support', plainMessage({ messageId: first, subject: 'Printer on fire', from: 'Alice Example <alice@customer.example>' }));
  await server.deliver('support', plainMessage(
    { subject: 'Re: Printer on fire', inReplyTo: first, references: [first], from: 'Alice Example <alice@customer.example>' },
    'It is still burning. Please hurry.\r\n',
  ));
  await server.deliver('support', attachmentMessage({ subject: 'Invoice 2026-113 is wrong', from: 'Bob <bob@supplier.example>' }));
  await server.deliver('support', encodedSubjectMessage({ from: 'Jörg Müller <joerg@kunde.example>' }));
  await server.deliver('sales', alternativeMessage({ subject: 'Quote for 40 laptops', from: 'Carol <carol@bigcorp.example>' }));
  await server.deliver('sales', latin1Message({ subject: 'Commande urgente', from: '=?ISO-8859-1?Q?=C9lodie?= <elodie@client.example>' }));

  copyFileSync(server.caFile, join(demoDir, 'demo-ca.pem'));
  const config = join(demoDir, 'mailpoll.yaml');
  writeFileSync(config, [
    '# Written by `npm run demo` for a private Dovecot that is gone once the demo ends.',
    'database: mailpoll.db',
    'defaults:',
    `  host: ${server.host}`,
    '  ca: demo-ca.pem',
    'mailboxes:',
    '  - name: support',
    '    protocol: imap',
    '    tls: starttls',
    `    port: ${server.ports.imap}`,
    '    username: support',
    '    password: demo-support-pw',
    '  - name: sales',
    '    protocol: pop3',
    '    tls: implicit',
    `    port: ${server.ports.pop3s}`,
    '    username: sales',
    '    password: demo-sales-pw',
    '    after: delete',
    '',
  ].join('\n'));

  console.log(`\n$ mailpoll fetch --now --verbose --config ${config}`);
  const fetch = spawnSync(process.execPath, [BIN, 'fetch', '--now', '--verbose', '--config', config], { stdio: 'inherit' });
  const db = join(demoDir, 'mailpoll.db');
  const tickets = query<{ number: number; subject: string; requester: string; messages: number; mailbox: string }>(
    db,
    `SELECT number, subject, COALESCE(requester_name || ' <' || requester_address || '>', requester_address) AS requester,
            message_count AS messages, mailbox FROM tickets ORDER BY number`,
  );
  console.log('\nTickets in the database:');
  console.table(tickets.map((t) => ({ ticket: `#${t.number}`, subject: t.subject, from: t.requester, messages: t.messages, mailbox: t.mailbox })));
  console.log(`\nLook around: sqlite3 ${db} 'SELECT * FROM tickets'   (config: ${config})`);
  process.exitCode = fetch.status ?? 1;
} finally {
  await server.stop();
}
