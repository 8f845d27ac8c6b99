CREATE INDEX sessions_by_sub ON public.sessions (sub);
