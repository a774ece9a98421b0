-- What supervisors changed on a running campaign (run state, dial-level
-- cap, abandonment target), so that a restart and every node of a
-- cluster apply it. No row: running, with the campaign file's settings.
CREATE TABLE campaign_controls (
    campaign_id     BIGINT  PRIMARY KEY REFERENCES campaigns (id),
    state           TEXT    NOT NULL,
    max_dial_level  DOUBLE PRECISION,
    target_percent  DOUBLE PRECISION,
    version         BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    updated_by      TEXT    NOT NULL
);
