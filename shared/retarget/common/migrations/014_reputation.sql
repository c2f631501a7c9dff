-- Reputation guard (docs/deliverability.md, "Reputation guard"): rolling complaint and
-- hard-bounce rates per workspace and sending domain, and the workspaces whose marketing mail
-- is paused. Additive: nothing existing changes.

-- Hourly buckets: every sender process adds its sent and hard-bounced messages (with the send
-- log's outcome, in the same statement), ingest's mailbox its complaints and asynchronous hard
-- bounces, so the counts survive restarts and are the sum over every process.
CREATE TABLE IF NOT EXISTS reputation_counts (
    workspace_id text NOT NULL,
    domain text NOT NULL,              -- the sending (envelope / DKIM) domain, lower case
    bucket timestamptz NOT NULL,       -- the start of the hour
    sent bigint NOT NULL DEFAULT 0,
    hard_bounces bigint NOT NULL DEFAULT 0,
    complaints bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, domain, bucket)
);
CREATE INDEX IF NOT EXISTS reputation_counts_bucket ON reputation_counts (bucket);

-- One row per workspace that was ever paused. counts_from: set by a resume, buckets that began
-- before it are not judged again (the complaints that caused the pause don't pause it twice).
CREATE TABLE IF NOT EXISTS workspace_pauses (
    workspace_id text PRIMARY KEY,
    paused boolean NOT NULL,
    reason text NOT NULL,              -- complaint_rate | hard_bounce_rate | operator
    detail text NOT NULL DEFAULT '',
    changed_at timestamptz NOT NULL,
    counts_from timestamptz
);
