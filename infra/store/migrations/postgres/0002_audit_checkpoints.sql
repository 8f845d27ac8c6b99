
CREATE TABLE audit_checkpoints (
  cursor       text PRIMARY KEY,
  event_count  bigint NOT NULL,
  rolling_hash text NOT NULL,
  signed_at    text NOT NULL,
  public_key   text NOT NULL,
  signature    text NOT NULL
);
