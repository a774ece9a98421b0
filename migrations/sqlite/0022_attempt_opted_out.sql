-- When the called party opted out by key during this attempt's
-- abandoned-call message: set once, so a second key (a long press told
-- twice) or a write retried after a commit that did succeed does not
-- write the audit row and the CRM event again.
ALTER TABLE call_attempts ADD COLUMN opted_out_at BIGINT;
