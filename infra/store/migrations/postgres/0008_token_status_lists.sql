ALTER TABLE public.tokens ADD COLUMN status_list TEXT;
ALTER TABLE public.tokens ADD COLUMN status_idx TEXT;
CREATE TABLE public.status_invalid (
  list_id text NOT NULL,
  idx     bigint NOT NULL,
  PRIMARY KEY (list_id, idx)
);
