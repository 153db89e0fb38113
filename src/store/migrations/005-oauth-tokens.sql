-- Version 5: OAuth2 access tokens obtained from a token endpoint (client credentials or refresh
-- token), cached per mailbox until shortly before they expire (src/auth/oauth2.ts), so a cron run
-- every minute does not ask the identity provider every minute. The access token is a secret:
-- the database file must stay private (chmod 600), as it already holds all the mail.
CREATE TABLE oauth_tokens (
  mailbox       TEXT PRIMARY KEY,
  access_token  TEXT,
  expires_at    TEXT,  -- ISO 8601 UTC; NULL: the endpoint gave no lifetime, the token is not reused
  refreshed_at  TEXT,  -- ISO 8601 UTC, when the endpoint issued it
  refresh_token TEXT,  -- refresh-token flow: the latest (possibly rotated) refresh token
  source        TEXT   -- fingerprint of the configured flow; a changed config discards the row
);
