-- A live node counts, as abandons, the unbridged answers of a node that
-- stopped beating (Store::ledger_take_over_lapsed), every cluster sync:
-- the open attempts of a campaign and an attempt's ledger rows are found
-- by index, not by scanning the campaign's history.
CREATE INDEX call_attempts_open ON call_attempts (campaign_id) WHERE outcome IS NULL;
CREATE INDEX abandon_ledger_attempt ON abandon_ledger (attempt_id);
