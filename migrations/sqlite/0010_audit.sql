-- The audit log records every state-changing act, from the API and the
-- command line: from where (the caller's address, or `cli@host`), how it
-- ended (the HTTP status; NULL for a command) and the request's id.
ALTER TABLE audit_log ADD COLUMN origin TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN status INTEGER;
ALTER TABLE audit_log ADD COLUMN request_id TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only: no row is ever changed or removed, by the dialler or by
-- anyone with the database file who goes through SQL.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
