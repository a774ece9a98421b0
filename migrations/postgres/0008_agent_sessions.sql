-- One session per agent across the cluster: the node holding an agent's
-- session, refreshed by that node's heartbeat. A login elsewhere is refused
-- while the lease is fresh; a dead node's lease lapses.
CREATE TABLE agent_sessions (
    agent_id      TEXT    PRIMARY KEY,
    node          TEXT    NOT NULL,
    campaign      TEXT    NOT NULL,
    since         BIGINT  NOT NULL,
    heartbeat_at  BIGINT  NOT NULL
);
