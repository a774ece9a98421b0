-- The audit log records every state-changing act, from the API and the
-- command line: from where (the caller's address, or `cli@host`), how it
-- ended (the HTTP status; NULL for a command) and the request's id.
ALTER TABLE audit_log ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN status BIGINT;
ALTER TABLE audit_log ADD COLUMN request_id TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only: no row is ever changed or removed (TRUNCATE included) by
-- any role that goes through SQL without disabling triggers.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
