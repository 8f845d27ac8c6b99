
CREATE TABLE events (
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  sequence       integer CHECK (sequence >= 0) NOT NULL,
  event_type     text NOT NULL,
  event_version  text NOT NULL,
  payload        text NOT NULL,
  metadata       text NOT NULL,
  position       integer NOT NULL,
  recorded_at    text NOT NULL,
  hash           text NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;
CREATE UNIQUE INDEX events_position ON events (position);
CREATE TABLE snapshots (
  aggregate_type   text NOT NULL,
  aggregate_id     text NOT NULL,
  last_sequence    integer CHECK (last_sequence >= 0) NOT NULL,
  current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL,
  payload          text NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
) STRICT;

CREATE TABLE subject_keys (
  sub         text PRIMARY KEY,
  wrapped_key text NOT NULL,
  created_at  text NOT NULL
) STRICT;
CREATE TABLE signing_key_secrets (
  kid             text PRIMARY KEY,
  wrapped_private text NOT NULL
) STRICT;
CREATE TABLE projector_checkpoints (
  projection text PRIMARY KEY,
  txid       integer NOT NULL,
  position   integer NOT NULL
) STRICT;

CREATE TABLE main.clients (
  client_id     text PRIMARY KEY,
  name          text NOT NULL,
  settings      text NOT NULL,
  secret_hash   text,
  status        text NOT NULL,
  registered_at text NOT NULL,
  updated_at    text NOT NULL
) STRICT;
CREATE TABLE main.accounts (
  sub           text PRIMARY KEY,
  account_id    text NOT NULL,
  username      text NOT NULL,
  email         text,
  name          text,
  password_hash text NOT NULL,
  status        text NOT NULL,
  created_at    text NOT NULL,
  credentials_changed_at text NOT NULL,
  updated_at    text NOT NULL
) STRICT;
CREATE TABLE main.usernames (
  account_id text PRIMARY KEY,
  sub        text NOT NULL
) STRICT;
CREATE TABLE main.consents (
  sub          text NOT NULL,
  client_id    text NOT NULL,
  scopes       text NOT NULL,
  status       text NOT NULL,
  granted_at   text NOT NULL,
  withdrawn_at text,
  updated_at   text NOT NULL,
  PRIMARY KEY (sub, client_id)
) STRICT;
CREATE TABLE main.grants (
  gid        text PRIMARY KEY,
  kind       text NOT NULL,
  client_id  text NOT NULL,
  sub        text,
  scopes     text NOT NULL,
  audience   text NOT NULL,
  status     text NOT NULL,
  created_at text NOT NULL,
  updated_at text NOT NULL,
  expires_at text NOT NULL,
  cursor     text NOT NULL,
  sid        text
) STRICT;
CREATE INDEX main.grants_by_client ON grants (client_id);
CREATE INDEX main.grants_by_sid ON grants (sid);
CREATE INDEX main.grants_by_sub ON grants (sub);
CREATE TABLE main.tokens (
  token_key  text PRIMARY KEY,
  kind       text NOT NULL,
  gid        text NOT NULL,
  jti        text,
  scopes     text,
  issued_at  text NOT NULL,
  expires_at text NOT NULL,
  status     text NOT NULL
) STRICT;
CREATE INDEX main.tokens_by_gid ON tokens (gid);
CREATE TABLE main.signing_keys (
  kid          text PRIMARY KEY,
  alg          text NOT NULL,
  public_jwk   text NOT NULL,
  status       text NOT NULL,
  generated_at text NOT NULL,
  updated_at   text NOT NULL
) STRICT;
CREATE TABLE main.sessions (
  sid        text PRIMARY KEY,
  sub        text NOT NULL,
  auth_time  text NOT NULL,
  expires_at text NOT NULL,
  status     text NOT NULL,
  updated_at text NOT NULL
) STRICT;
CREATE TABLE main.audit_index (
  position       integer PRIMARY KEY,
  cursor         text NOT NULL,
  recorded_at    text NOT NULL,
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  event_type     text NOT NULL,
  actor          text,
  client_id      text,
  subject        text
) STRICT;
CREATE INDEX main.audit_by_recorded_at ON audit_index (recorded_at);
