import { resolve } from 'node:path';
import type { OAuth2Settings, Protocol, SecretRef } from './types.js';

/** `oauth2:` of a mailbox as the schema lets it through: every key optional, combinations unchecked. */
export interface OAuth2Input {
  mechanism?: 'xoauth2' | 'oauthbearer';
  tokenCommand?: string;
  tokenFile?: string;
  tokenUrl?: string;
  clientId?: string;
  clientSecret?: string;
  clientSecretFile?: string;
  clientSecretCommand?: string;
  scope?: string;
  refreshToken?: string;
  refreshTokenFile?: string;
  refreshTokenCommand?: string;
}

type Key = keyof OAuth2Input;

const FLOW_KEYS: readonly Key[] = ['tokenUrl', 'clientId', 'clientSecret', 'clientSecretFile', 'clientSecretCommand', 'scope', 'refreshToken', 'refreshTokenFile', 'refreshTokenCommand'];

const HOW =
  'set tokenCommand, tokenFile, or tokenUrl + clientId with clientSecret/clientSecretFile/clientSecretCommand (client credentials) ' +
  'or with refreshToken/refreshTokenFile/refreshTokenCommand (refresh token)';

/**
 * Validates the combinations of `oauth2:` and normalises it. Exactly one token source: a command, a
 * file, the client-credentials grant or the refresh-token grant. Reports every problem through
 * `fail` with the key it concerns (a path below `oauth2`); returns undefined when there was one.
 */
export function normaliseOAuth2(
  o: OAuth2Input,
  protocol: Protocol,
  baseDir: string,
  fail: (key: Key | undefined, message: string) => void,
): OAuth2Settings | undefined {
  let ok = true;
  const problem = (key: Key | undefined, message: string) => {
    ok = false;
    fail(key, message);
  };
  const mechanism = o.mechanism ?? 'xoauth2';
  if (protocol === 'pop3' && mechanism !== 'xoauth2') {
    problem('mechanism', 'POP3 logs in with AUTH XOAUTH2 only: use mechanism: xoauth2 (or leave it out)');
  }

  const direct = (['tokenCommand', 'tokenFile'] as const).filter((k) => o[k] !== undefined);
  const usesEndpoint = o.tokenUrl !== undefined || o.clientId !== undefined;
  if (direct.length > 1) problem(direct[1], 'set only one of tokenCommand, tokenFile');
  if (direct.length > 0) {
    const extra = FLOW_KEYS.filter((k) => o[k] !== undefined);
    if (extra.length > 0) problem(extra[0], `${direct[0] ?? 'tokenCommand'} gives the token itself; ${extra.join(', ')} belong to the token endpoint flows: remove ${extra.length > 1 ? 'them' : 'it'}`);
    if (!ok) return undefined;
    if (o.tokenCommand !== undefined) return { mechanism, source: { kind: 'tokenCommand', token: { kind: 'command', command: o.tokenCommand } } };
    return { mechanism, source: { kind: 'tokenFile', token: { kind: 'file', path: resolve(baseDir, o.tokenFile ?? '') } } };
  }
  if (!usesEndpoint) {
    problem(undefined, `no token source: ${HOW}`);
    return undefined;
  }

  if (o.tokenUrl === undefined) problem('clientId', 'tokenUrl is missing: the token endpoint, e.g. https://login.microsoftonline.com/<tenant-id>/oauth2/v2.0/token');
  else {
    const why = tokenUrlProblem(o.tokenUrl);
    if (why !== undefined) problem('tokenUrl', why);
  }
  if (o.clientId === undefined) problem('tokenUrl', 'clientId is missing: the application (client) id registered with the identity provider');

  const secrets = (['clientSecret', 'clientSecretFile', 'clientSecretCommand'] as const).filter((k) => o[k] !== undefined);
  if (secrets.length > 1) problem(secrets[1], `set only one of ${secrets.join(', ')}`);
  const refresh = (['refreshToken', 'refreshTokenFile', 'refreshTokenCommand'] as const).filter((k) => o[k] !== undefined);
  if (refresh.length > 1) problem(refresh[1], `set only one of ${refresh.join(', ')}`);
  if (refresh.length === 0 && secrets.length === 0) {
    problem('clientId', 'no client secret and no refresh token: set clientSecret, clientSecretFile or clientSecretCommand (client credentials), or refreshToken, refreshTokenFile or refreshTokenCommand');
  }
  if (!ok) return undefined;

  const tokenUrl = o.tokenUrl ?? '';
  const clientId = o.clientId ?? '';
  const clientSecret = secrets.length === 0 ? undefined : ref(o.clientSecret, o.clientSecretFile, o.clientSecretCommand, baseDir);
  if (refresh.length > 0) {
    const refreshToken = ref(o.refreshToken, o.refreshTokenFile, o.refreshTokenCommand, baseDir);
    return { mechanism, source: { kind: 'refreshToken', tokenUrl, clientId, clientSecret, refreshToken, scope: o.scope } };
  }
  return { mechanism, source: { kind: 'clientCredentials', tokenUrl, clientId, clientSecret: clientSecret as SecretRef, scope: o.scope } };
}

/**
 * The token endpoint receives the client secret: https only, except on the loopback interface
 * (a local token helper or a test endpoint), where nothing crosses a network.
 */
export function tokenUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'expected an https:// URL, e.g. https://login.microsoftonline.com/<tenant-id>/oauth2/v2.0/token';
  }
  if (parsed.protocol === 'https:') return undefined;
  const loopback = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i.test(parsed.hostname);
  if (parsed.protocol === 'http:' && loopback) return undefined;
  return 'the token endpoint must use https:// (the client secret is sent to it); plain http:// is allowed only on 127.0.0.1/localhost';
}

/** A secret written inline (`${VAR}` templates allowed), in a file or printed by a command. */
function ref(literal: string | undefined, file: string | undefined, command: string | undefined, baseDir: string): SecretRef {
  if (file !== undefined) return { kind: 'file', path: resolve(baseDir, file) };
  if (command !== undefined) return { kind: 'command', command };
  const value = literal ?? '';
  return /\$\{[A-Za-z_][A-Za-z0-9_]*\}/.test(value) ? { kind: 'env', template: value } : { kind: 'literal', value };
}

/** Every secret reference of an `oauth2:` mailbox, with its key below the mailbox (`oauth2.tokenFile`). */
export function oauth2SecretFields(mailbox: { oauth2?: OAuth2Settings | undefined }): { key: string; ref: SecretRef }[] {
  const source = mailbox.oauth2?.source;
  if (source === undefined) return [];
  const suffix = (r: SecretRef) => (r.kind === 'file' ? 'File' : r.kind === 'command' ? 'Command' : '');
  switch (source.kind) {
    case 'tokenCommand':
      return [{ key: 'oauth2.tokenCommand', ref: source.token }];
    case 'tokenFile':
      return [{ key: 'oauth2.tokenFile', ref: source.token }];
    case 'clientCredentials':
      return [{ key: `oauth2.clientSecret${suffix(source.clientSecret)}`, ref: source.clientSecret }];
    case 'refreshToken': {
      const out = [{ key: `oauth2.refreshToken${suffix(source.refreshToken)}`, ref: source.refreshToken }];
      if (source.clientSecret !== undefined) out.push({ key: `oauth2.clientSecret${suffix(source.clientSecret)}`, ref: source.clientSecret });
      return out;
    }
  }
}
