-- Registry imports, each recorded: who, when, what file (its SHA-256),
-- what it did. `dialler dnd history` lists them.
CREATE TABLE dnd_imports (
    id          INTEGER PRIMARY KEY,
    at          BIGINT  NOT NULL,           -- when the import ran (ms)
    actor       TEXT    NOT NULL,           -- who ran it
    target      TEXT    NOT NULL,           -- national:GB, internal, campaign:NAME
    kind        TEXT    NOT NULL,           -- full or delta
    file        TEXT    NOT NULL,
    sha256      TEXT    NOT NULL,
    loaded_at   BIGINT  NOT NULL,           -- when the data left the regulator
    entries     BIGINT  NOT NULL,
    added       BIGINT  NOT NULL,
    removed     BIGINT  NOT NULL,
    rejected    BIGINT  NOT NULL,
    total       BIGINT  NOT NULL,
    forced      BOOLEAN NOT NULL
);

-- Numbers refused in every campaign without keeping the number: a keyed
-- hash (HMAC-SHA256 under the account's key) left by an erasure, checked
-- at lead import and at dial time.
CREATE TABLE suppressions (
    hash        TEXT    PRIMARY KEY,
    added_at    BIGINT  NOT NULL,
    source      TEXT    NOT NULL
);

-- Account-wide settings, such as the suppression key.
CREATE TABLE settings (
    name        TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL
);

-- Append-only record of deliberate acts that remove protection (and,
-- later, every state-changing action): who, when, what, why.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);

-- The 72-hour recall rule asks, per number, for the last abandoned call in
-- any campaign.
CREATE INDEX call_attempts_phone ON call_attempts (phone);
