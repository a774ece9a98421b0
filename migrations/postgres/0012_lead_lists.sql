-- Lead lists: each lead belongs to the list it was imported into
-- (`default` unless named), and a supervisor chooses which of a
-- campaign's lists it dials. No row in campaign_lists for a campaign:
-- every list. Agreed callbacks are dialled whatever their list.
ALTER TABLE leads ADD COLUMN list TEXT NOT NULL DEFAULT 'default';
CREATE TABLE campaign_lists (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id),
    list        TEXT   NOT NULL,
    PRIMARY KEY (campaign_id, list)
);
