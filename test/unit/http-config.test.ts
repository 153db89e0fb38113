import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError, type ConfigProblem } from '../../src/errors.js';

const FILE = '/etc/mailpoll/mailpoll.yaml';
const MAILBOX = `mailboxes:
  - name: support
    protocol: imap
    host: mail.example.com
    username: support
    password: \${SUPPORT_PASSWORD}
`;

function problems(text: string): ConfigProblem[] {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config: http, pings, healthWindow', () => {
  it('has neither http nor pings unless configured, and the default health window', () => {
    const config = parseConfig(MAILBOX, FILE);
    expect(config.http).toBeUndefined();
    expect(config.pings).toBeUndefined();
    expect(config.mailboxes[0]?.healthWindowMs).toBeUndefined();
  });

  it('takes the API key like a mailbox password: ${ENV}, literal, file (relative to the config) or command', () => {
    expect(parseConfig(`http:\n  apiKey: \${MAILPOLL_API_KEY}\n${MAILBOX}`, FILE).http).toEqual({ apiKey: { kind: 'env', template: '${MAILPOLL_API_KEY}' } });
    expect(parseConfig(`http:\n  apiKey: literal-key-0123456789\n${MAILBOX}`, FILE).http).toEqual({ apiKey: { kind: 'literal', value: 'literal-key-0123456789' } });
    expect(parseConfig(`http:\n  apiKeyFile: secrets/api-key\n${MAILBOX}`, FILE).http).toEqual({ apiKey: { kind: 'file', path: '/etc/mailpoll/secrets/api-key' } });
    expect(parseConfig(`http:\n  apiKeyCommand: pass show mailpoll/api\n${MAILBOX}`, FILE).http).toEqual({ apiKey: { kind: 'command', command: 'pass show mailpoll/api' } });
  });

  it('names file, line and field when the API key is missing, doubled or misspelt', () => {
    expect(problems(`http: {}\n${MAILBOX}`)).toEqual([expect.objectContaining({ file: FILE, line: 1, field: 'http.apiKey', message: expect.stringContaining('no API key') })]);
    expect(problems(`http:\n  apiKey: a\n  apiKeyFile: b\n${MAILBOX}`)).toEqual([expect.objectContaining({ line: 3, field: 'http.apiKeyFile', message: 'set only one of apiKey, apiKeyFile' })]);
    expect(problems(`http:\n  api_key: x\n${MAILBOX}`)).toEqual(expect.arrayContaining([expect.objectContaining({ line: 2, field: 'http.api_key', message: 'unknown key' })]));
  });

  it('defaults the failure ping to the success URL plus /fail and the timeout to 5 s', () => {
    expect(parseConfig(`pings:\n  success: https://hc-ping.com/0f3c1a2b-uuid\n${MAILBOX}`, FILE).pings).toEqual({
      successUrl: 'https://hc-ping.com/0f3c1a2b-uuid',
      failureUrl: 'https://hc-ping.com/0f3c1a2b-uuid/fail',
      timeoutMs: 5_000,
    });
    expect(parseConfig(`pings:\n  success: https://example.net/ping/abc/?x=1\n  timeout: 1s\n${MAILBOX}`, FILE).pings).toMatchObject({
      failureUrl: 'https://example.net/ping/abc/fail?x=1',
      timeoutMs: 1_000,
    });
    expect(parseConfig(`pings:\n  success: https://a.example/ok\n  failure: https://a.example/bad\n${MAILBOX}`, FILE).pings?.failureUrl).toBe('https://a.example/bad');
  });

  it('refuses a ping URL that is not http(s) and a timeout that is not short', () => {
    expect(problems(`pings:\n  success: hc-ping.com/abc\n${MAILBOX}`)).toEqual([expect.objectContaining({ line: 2, field: 'pings.success', message: expect.stringContaining('http:// or https://') })]);
    expect(problems(`pings:\n  success: https://a.example/x\n  failure: ftp://a.example/y\n${MAILBOX}`)).toEqual([expect.objectContaining({ line: 3, field: 'pings.failure' })]);
    expect(problems(`pings:\n  success: https://a.example/x\n  timeout: 5m\n${MAILBOX}`)).toEqual([expect.objectContaining({ line: 3, field: 'pings.timeout', message: expect.stringContaining('between 100ms and 60s') })]);
    expect(problems(`pings:\n  failure: https://a.example/x\n${MAILBOX}`)).toEqual([expect.objectContaining({ field: 'pings.success', message: 'missing required field' })]);
  });

  it('takes healthWindow per mailbox or from defaults, and refuses one not longer than every', () => {
    expect(parseConfig(`${MAILBOX}    healthWindow: 2h\n`, FILE).mailboxes[0]?.healthWindowMs).toBe(7_200_000);
    expect(parseConfig(`defaults:\n  healthWindow: 30m\n${MAILBOX}`, FILE).mailboxes[0]?.healthWindowMs).toBe(1_800_000);
    expect(problems(`${MAILBOX}    every: 10m\n    healthWindow: 10m\n`)).toEqual([
      expect.objectContaining({ line: 8, field: 'mailboxes[0].healthWindow', message: expect.stringContaining('longer than every') }),
    ]);
  });
});
