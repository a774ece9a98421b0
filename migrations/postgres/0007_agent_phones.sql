-- The phones each agent may log in at, bound by a supervisor or an admin
-- (`dialler phone add`, `POST /api/agents/{id}/phones`): a login names one
-- of these or is refused, so no token holder can make the dialler call a
-- URI nobody provisioned.
CREATE TABLE agent_phones (
    agent_id    TEXT    NOT NULL,
    sip_uri     TEXT    NOT NULL,
    added_at    BIGINT  NOT NULL,
    added_by    TEXT    NOT NULL,
    PRIMARY KEY (agent_id, sip_uri)
);
