-- Every SIP status the INVITE got, in order, repeats removed (for example
-- "100,180,183,200"), beside the final one in sip_code.
ALTER TABLE call_attempts ADD COLUMN sip_codes TEXT;
