-- The nodes running each campaign, with a heartbeat: a node shares the
-- campaign's abandonment allowance with the others that beat recently.
CREATE TABLE campaign_nodes (
    campaign_id   BIGINT  NOT NULL,
    node          TEXT    NOT NULL,
    heartbeat_at  BIGINT  NOT NULL,
    PRIMARY KEY (campaign_id, node)
);
