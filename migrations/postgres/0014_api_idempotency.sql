-- Requests made with an Idempotency-Key (the leads API): the first one's
-- answer, given again to a repeat of the same request; a repeat with
-- another body is refused. `response` is NULL while the first one runs.
CREATE TABLE api_idempotency (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    key         TEXT   NOT NULL,
    request_sha256 TEXT NOT NULL,
    response    TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, key)
);
