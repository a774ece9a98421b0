-- Webhooks: a campaign's subscriptions (URL, events, signing secret), the
-- outbox of events to deliver (written in the transaction of the row each
-- describes, one row per subscription), and the log of every delivery
-- attempt.
CREATE TABLE webhook_subscriptions (
    id          INTEGER PRIMARY KEY,
    campaign_id BIGINT  NOT NULL REFERENCES campaigns (id),
    url         TEXT    NOT NULL,
    -- The events, comma-separated with a comma at each end: ',call.ended,'.
    events      TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL,
    removed_at  BIGINT
);
CREATE INDEX webhook_subscriptions_campaign ON webhook_subscriptions (campaign_id);

CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY,
    subscription_id BIGINT  NOT NULL REFERENCES webhook_subscriptions (id),
    event           TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    delivered_at    BIGINT,
    failed_at       BIGINT,
    last_status     BIGINT,
    last_error      TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY,
    outbox_id   BIGINT  NOT NULL REFERENCES webhook_outbox (id),
    at          BIGINT  NOT NULL,
    status      BIGINT,
    error       TEXT,
    duration_ms BIGINT  NOT NULL
);
CREATE INDEX webhook_attempts_outbox ON webhook_attempts (outbox_id);
