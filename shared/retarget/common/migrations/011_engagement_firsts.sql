-- The first human open and the first human click of each email, for ingest's unique counters
-- (retarget_ingest_engagement_unique_total): the primary key makes "first" a single INSERT that
-- every ingest process and replica agrees on. At most two rows per email sent (fewer than the
-- send log); rows older than the open/click link TTL can never be hit again (first_at says when).
CREATE TABLE IF NOT EXISTS engagement_firsts (
    message_id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('opened', 'clicked')),
    first_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, kind)
);
