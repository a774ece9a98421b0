-- A callback the agent kept for themself: the agent who booked it, while
-- the lead's last outcome is that callback. Until the campaign's grace
-- after its time, only the node holding that agent's session claims it and
-- only that agent takes it; then it is anyone's. NULL: anyone's.
ALTER TABLE leads ADD COLUMN callback_agent TEXT;

-- A node refreshes its claims with its heartbeat (a lead held in a hopper
-- longer than the claim lease, a kept callback waiting for its agent, is
-- not taken by another node while its own is alive): by owner, claimed
-- rows only.
CREATE INDEX leads_claim_owner ON leads (claim_owner) WHERE claim_owner IS NOT NULL;
