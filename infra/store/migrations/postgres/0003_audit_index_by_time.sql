DROP INDEX IF EXISTS public.audit_by_subject;
DROP INDEX IF EXISTS public.audit_by_client;
CREATE INDEX IF NOT EXISTS audit_by_recorded_at ON public.audit_index (recorded_at);