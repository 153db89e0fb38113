/**
 * What `mailpoll init` writes: a commented config with one example mailbox whose password comes
 * from a file beside it. Both pass `mailpoll check` as written (a placeholder password is a
 * warning there, not an error), so the first thing a new user runs works, and says what to edit.
 */

/** The first line of the password file init writes; `check` warns while it is still there. */
export const PLACEHOLDER_PASSWORD = 'REPLACE-WITH-THE-MAILBOX-PASSWORD';

/** Host names of the starter config; `check` warns while a mailbox still points there. */
export const PLACEHOLDER_HOST = /(^|\.)example\.(com|org|net)$/i;

/** Contents of the password file init writes (only the first line is ever read). */
export const STARTER_PASSWORD_FILE = `${PLACEHOLDER_PASSWORD}\n# Only the first line of this file is read: put the password of the mailbox there.\n`;

/** A YAML scalar for a file name, quoted only when plain YAML would misread it. */
function yamlString(value: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(value) ? value : JSON.stringify(value);
}

/** The starter config; `passwordFile` is the password file's path relative to the config. */
export function starterConfig(passwordFile: string): string {
  const pw = yamlString(passwordFile);
  return `# mailpoll configuration, written by \`mailpoll init\`.
#
# Next steps:
#   1. set host and username below, and put the password on the first line of ${passwordFile};
#   2. mailpoll check      validates this file and every password source; connects nowhere;
#   3. mailpoll test       connects, logs in, opens the folder and counts; changes nothing;
#   4. mailpoll fetch      stores new mail as tickets (silent on success: made for cron);
#   5. mailpoll schedule   prints the crontab line, the Windows schtasks command, a systemd timer.
# (Pass --config FILE to each when this file is not ./mailpoll.yaml, or set MAILPOLL_CONFIG.)

# The SQLite database; a relative path is relative to this file.
database: mailpoll.db

# Settings every mailbox inherits unless it sets its own.
defaults:
  tls: implicit            # implicit (993/995) | starttls (143/110) | none (needs allowPlaintext: true)
  every: 5m                # how often a mailbox is due; cron may run \`mailpoll fetch\` every minute
  maxMessages: 50          # messages fetched per mailbox per run; the rest come next run
  maxMessageBytes: 50MB    # larger messages are never dropped: see oversize
  oversize: skip           # skip: leave them on the server and report | headers: store the headers

mailboxes:
  - name: support                  # shown in logs, in \`mailpoll status\`, used by --mailbox
    protocol: imap                 # imap | pop3
    host: imap.example.com
    username: support@example.com
    # The password, from exactly one of:
    passwordFile: ${pw}${' '.repeat(Math.max(1, 21 - pw.length))}# the first line of this file (relative to this one); keep it mode 0600
    # password: \${SUPPORT_PASSWORD}      # an environment variable of the cron job
    # passwordCommand: pass show mail/support   # what this command prints
    folder: INBOX
    after: seen                    # seen | move (with moveTo: FOLDER) | delete | keep

  # A POP3 mailbox looks like this:
  # - name: sales
  #   protocol: pop3
  #   host: pop.example.com
  #   username: sales
  #   passwordFile: sales.password
  #   after: keep                  # keep | delete (only once the message is stored)
`;
}
