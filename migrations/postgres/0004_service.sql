-- Live service, PostgreSQL flavour. Kept in step with ../sqlite/0004_service.sql.

-- Lead claims: a node that takes leads into its hopper marks them
-- status = 'claimed' with its name and the time. A claim older than the
-- lease may be taken by another node (its holder died); a node restarting
-- under the same name releases its own claims at once.
ALTER TABLE leads ADD COLUMN claim_owner TEXT;
ALTER TABLE leads ADD COLUMN claimed_at BIGINT;
-- Why compliance last refused the lead just before a dial (reason codes,
-- comma-separated); NULL once dialled.
ALTER TABLE leads ADD COLUMN refused_reason TEXT;
CREATE INDEX leads_claims ON leads (campaign_id, status, claimed_at);
-- The node that placed an attempt: on restart a node closes only its own
-- calls in flight as interrupted, never another live node's.
ALTER TABLE call_attempts ADD COLUMN node TEXT;
