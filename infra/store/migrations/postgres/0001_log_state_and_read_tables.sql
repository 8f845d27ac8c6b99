
CREATE TABLE events (
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  sequence       bigint CHECK (sequence >= 0) NOT NULL,
  event_type     text NOT NULL,
  event_version  text NOT NULL,
  payload        json NOT NULL,
  metadata       json NOT NULL,
  position       bigint GENERATED ALWAYS AS IDENTITY,
  txid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  hash           text NOT NULL DEFAULT '',
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_position ON events (position);
CREATE INDEX events_global_order ON events (txid, position);
CREATE TABLE snapshots (
  aggregate_type   text NOT NULL,
  aggregate_id     text NOT NULL,
  last_sequence    bigint CHECK (last_sequence >= 0) NOT NULL,
  current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
  payload          json NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

CREATE TABLE subject_keys (
  sub         text PRIMARY KEY,
  wrapped_key text NOT NULL,
  created_at  text NOT NULL
);
CREATE TABLE signing_key_secrets (
  kid             text PRIMARY KEY,
  wrapped_private text NOT NULL
);
CREATE TABLE projector_checkpoints (
  projection text PRIMARY KEY,
  txid       bigint NOT NULL,
  position   bigint NOT NULL
);

CREATE TABLE public.clients (
  client_id     text PRIMARY KEY,
  name          text NOT NULL,
  settings      text NOT NULL,
  secret_hash   text,
  status        text NOT NULL,
  registered_at text NOT NULL,
  updated_at    text NOT NULL
);
CREATE TABLE public.accounts (
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
);
CREATE TABLE public.usernames (
  account_id text PRIMARY KEY,
  sub        text NOT NULL
);
CREATE TABLE public.consents (
  sub          text NOT NULL,
  client_id    text NOT NULL,
  scopes       text NOT NULL,
  status       text NOT NULL,
  granted_at   text NOT NULL,
  withdrawn_at text,
  updated_at   text NOT NULL,
  PRIMARY KEY (sub, client_id)
);
CREATE TABLE public.grants (
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
);
CREATE INDEX grants_by_client ON public.grants (client_id);
CREATE INDEX grants_by_sid ON public.grants (sid);
CREATE INDEX grants_by_sub ON public.grants (sub);
CREATE TABLE public.tokens (
  token_key  text PRIMARY KEY,
  kind       text NOT NULL,
  gid        text NOT NULL,
  jti        text,
  scopes     text,
  issued_at  text NOT NULL,
  expires_at text NOT NULL,
  status     text NOT NULL
);
CREATE INDEX tokens_by_gid ON public.tokens (gid);
CREATE TABLE public.signing_keys (
  kid          text PRIMARY KEY,
  alg          text NOT NULL,
  public_jwk   text NOT NULL,
  status       text NOT NULL,
  generated_at text NOT NULL,
  updated_at   text NOT NULL
);
CREATE TABLE public.sessions (
  sid        text PRIMARY KEY,
  sub        text NOT NULL,
  auth_time  text NOT NULL,
  expires_at text NOT NULL,
  status     text NOT NULL,
  updated_at text NOT NULL
);
CREATE TABLE public.audit_index (
  position       bigint PRIMARY KEY,
  cursor         text NOT NULL,
  recorded_at    text NOT NULL,
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  event_type     text NOT NULL,
  actor          text,
  client_id      text,
  subject        text
);
CREATE INDEX audit_by_recorded_at ON public.audit_index (recorded_at);