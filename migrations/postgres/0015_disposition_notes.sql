-- The agent's notes on a call, written with its disposition (the agent
-- desktop's notes box; up to 2,000 characters, checked by the API).
ALTER TABLE dispositions ADD COLUMN notes TEXT;
