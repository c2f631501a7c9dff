-- engagement_firsts stays bounded: each insert deletes up to two rows older than the links'
-- lifetime (ingest's ENGAGEMENT_FIRSTS_KEEP_DAYS), found oldest first through this index.
CREATE INDEX IF NOT EXISTS engagement_firsts_first_at ON engagement_firsts (first_at);
