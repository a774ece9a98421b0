-- dialler schema, SQLite flavour. Kept in step with ../postgres/0001_init.sql:
-- same tables, columns and meanings. Times are milliseconds since the Unix
-- epoch (UTC) in both, so reports give the same answer on either store.

CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    profile     TEXT    NOT NULL,
    config      TEXT    NOT NULL,           -- validated campaign, JSON
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE leads (
    id              INTEGER PRIMARY KEY,
    campaign_id     BIGINT  NOT NULL REFERENCES campaigns(id),
    phone           TEXT    NOT NULL,       -- E.164
    country         TEXT    NOT NULL,       -- ISO 3166-1 alpha-2
    timezones       TEXT,                   -- IANA zones, comma-separated; NULL = unknown
    fields          TEXT    NOT NULL,       -- other CSV columns, JSON object
    status          TEXT    NOT NULL,       -- new, tz_unknown, dialling, retry, done, dnc, erased
    priority        BIGINT  NOT NULL DEFAULT 0,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_outcome    TEXT,
    source_line     BIGINT,
    imported_at     BIGINT  NOT NULL,
    UNIQUE (campaign_id, phone)
);
CREATE INDEX leads_hopper ON leads (campaign_id, status, priority DESC, next_attempt_at);

CREATE TABLE call_attempts (
    id            INTEGER PRIMARY KEY,
    campaign_id   BIGINT  NOT NULL REFERENCES campaigns(id),
    lead_id       BIGINT  REFERENCES leads(id),
    attempt_no    BIGINT  NOT NULL,
    phone         TEXT,                     -- E.164; NULL once erased
    started_at    BIGINT  NOT NULL,
    answered_at   BIGINT,
    connected_at  BIGINT,
    ended_at      BIGINT,
    outcome       TEXT,                     -- NULL while in flight
    sip_code      BIGINT,
    agent_id      TEXT
);
CREATE INDEX call_attempts_campaign ON call_attempts (campaign_id, started_at);
CREATE INDEX call_attempts_lead ON call_attempts (lead_id);

CREATE TABLE dispositions (
    id            INTEGER PRIMARY KEY,
    attempt_id    BIGINT  NOT NULL REFERENCES call_attempts(id),
    campaign_id   BIGINT  NOT NULL REFERENCES campaigns(id),
    agent_id      TEXT    NOT NULL,
    code          TEXT    NOT NULL,
    conversion    BOOLEAN NOT NULL,
    contact       BOOLEAN NOT NULL,
    dnc           BOOLEAN NOT NULL,
    callback_at   BIGINT,
    amount_minor  BIGINT,                   -- revenue in minor units of the campaign's currency
    wrapup_ms     BIGINT,
    created_at    BIGINT  NOT NULL
);
CREATE INDEX dispositions_campaign ON dispositions (campaign_id, created_at);

-- Abandonment ledger: one row per human answer, and one per abandon.
CREATE TABLE abandon_ledger (
    id            INTEGER PRIMARY KEY,
    campaign_id   BIGINT  NOT NULL REFERENCES campaigns(id),
    attempt_id    BIGINT,
    kind          TEXT    NOT NULL,         -- human_answer | abandon
    at            BIGINT  NOT NULL
);
CREATE INDEX abandon_ledger_window ON abandon_ledger (campaign_id, at);
