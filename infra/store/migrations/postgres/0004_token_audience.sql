ALTER TABLE public.tokens ADD COLUMN audience TEXT;
