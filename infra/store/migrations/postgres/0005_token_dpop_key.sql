ALTER TABLE public.tokens ADD COLUMN jkt TEXT;
