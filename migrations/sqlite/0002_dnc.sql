-- Do-not-call numbers the account keeps itself: the internal list (scope
-- 'internal', every campaign) and campaign lists (scope 'campaign:NAME').
-- National registries are large and live in registry files instead.
CREATE TABLE dnc_numbers (
    scope       TEXT    NOT NULL,
    phone       TEXT    NOT NULL,           -- E.164
    added_at    BIGINT  NOT NULL,
    source      TEXT    NOT NULL,           -- import, disposition, erasure
    PRIMARY KEY (scope, phone)
);
