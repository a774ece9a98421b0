-- SIP legs a node placed and has not yet seen end: written before the
-- INVITE goes out and again at the answer, removed when the leg ends. A
-- node starting up ends what its crash left: BYE in the dialog of an
-- answered leg, CANCEL of a ringing one's INVITE. `record` is the leg's
-- identity as JSON (Call-ID, Via, From, To, Request-URI, and after the
-- answer the peer's tag, target and route set).
CREATE TABLE sip_legs (
    call_id     TEXT    PRIMARY KEY,
    node        TEXT    NOT NULL,
    campaign_id BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,   -- customer, agent
    attempt_id  BIGINT,             -- a customer leg's attempt
    agent_id    TEXT,               -- an agent leg's agent
    record      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX sip_legs_node ON sip_legs (node);
