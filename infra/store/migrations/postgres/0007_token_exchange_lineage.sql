ALTER TABLE public.grants ADD COLUMN parent_gid TEXT;
ALTER TABLE public.grants ADD COLUMN ancestors TEXT;
ALTER TABLE public.grants ADD COLUMN act TEXT;
CREATE INDEX grants_by_parent ON public.grants (parent_gid);
