-- Unsubscribes from one campaign only (the tracking link's preference page). Unsubscribing
-- from everything goes to `suppressions` (reason 'unsubscribed') as before; the sender must
-- also skip a recipient listed here for the message's campaign.

CREATE TABLE campaign_unsubscribes (
    workspace_id  text NOT NULL,
    email_hash    bytea NOT NULL,            -- sha256 of the normalised address
    campaign      text NOT NULL,
    source        text NOT NULL,             -- e.g. 'link:page'
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, email_hash, campaign)
);
