-- Supervisor surface, SQLite flavour. Kept in step with
-- ../postgres/0003_supervisor.sql: same tables, columns and meanings.

-- One row per interval an agent spends in a state while logged in. The live
-- service opens a row on every state change and closes the previous one;
-- ended_at is NULL while the interval is open. Reports clip intervals to
-- their range.
CREATE TABLE agent_states (
    id           INTEGER PRIMARY KEY,
    campaign_id  BIGINT  NOT NULL REFERENCES campaigns(id),
    agent_id     TEXT    NOT NULL,
    state        TEXT    NOT NULL
                 CHECK (state IN ('ready', 'reserved', 'on_call', 'wrapup', 'paused')),
    reason       TEXT,                      -- why paused, free text
    started_at   BIGINT  NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX agent_states_campaign ON agent_states (campaign_id, started_at);
-- An agent has at most one open interval, whatever the campaign.
CREATE UNIQUE INDEX agent_states_open ON agent_states (agent_id) WHERE ended_at IS NULL;

-- API tokens. Only the SHA-256 of a token is kept; the token itself is shown
-- once, when created. An agent token names its agent; other roles do not.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE,   -- lowercase hex SHA-256
    role         TEXT    NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    agent_id     TEXT,
    label        TEXT,
    created_at   BIGINT  NOT NULL,
    revoked_at   BIGINT,
    CHECK ((role = 'agent') = (agent_id IS NOT NULL))
);

-- Log of personal data erasures: when, and how many rows, never the number.
CREATE TABLE erasures (
    id            INTEGER PRIMARY KEY,
    at            BIGINT  NOT NULL,
    leads         BIGINT  NOT NULL,         -- lead rows deleted
    attempts      BIGINT  NOT NULL,         -- call attempts de-identified
    dispositions  BIGINT  NOT NULL          -- dispositions of those attempts (kept)
);
