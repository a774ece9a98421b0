-- When an event's current run of tries began: its creation, or the last
-- replay. The 72 hours after which delivery gives up count from here, so
-- a replayed old event is tried on the usual back-off, not given up after
-- its first failure.
ALTER TABLE webhook_outbox ADD COLUMN retry_from BIGINT;
