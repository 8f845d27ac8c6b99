ALTER TABLE main.tokens ADD COLUMN status_list TEXT;
ALTER TABLE main.tokens ADD COLUMN status_idx TEXT;
CREATE TABLE main.status_invalid (
  list_id text NOT NULL,
  idx     integer NOT NULL,
  PRIMARY KEY (list_id, idx)
) STRICT;
