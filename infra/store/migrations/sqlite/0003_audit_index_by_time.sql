DROP INDEX IF EXISTS main.audit_by_subject;
DROP INDEX IF EXISTS main.audit_by_client;
CREATE INDEX IF NOT EXISTS main.audit_by_recorded_at ON audit_index (recorded_at);