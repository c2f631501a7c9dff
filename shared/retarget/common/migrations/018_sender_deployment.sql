-- Deployments that share one database (staging and production, blue/green, parallel test stacks)
-- keep their sender work apart (services/sender/README.md, "Deferred messages and the retry
-- loop"). `deployment` is the sender's topic prefix (RETARGET_TOPIC_PREFIX): a stale claim's or
-- a retry's outcome goes to that prefix's deliveries topic, and a retry goes out through that
-- deployment's relay, so only that deployment may sweep, lease, hand off or count the row.
-- Senders write it on every claim and retry row; the retry loop takes rows `deployment IN
-- (<its prefix>, '')`.
--
-- '' is a row written before this migration (or by a sender of an older version, during the
-- upgrade): any deployment may take it, as every one did before. A deployment that re-claims
-- such a row for a retry stamps it with its own prefix.
--
-- Additive: constant defaults, so no table rewrite, and older senders keep working.
ALTER TABLE send_log ADD COLUMN IF NOT EXISTS deployment text NOT NULL DEFAULT '';
ALTER TABLE send_retries ADD COLUMN IF NOT EXISTS deployment text NOT NULL DEFAULT '';

-- The lease and the backlog count filter send_retries by deployment. Through send_retries_due
-- (not_before) alone, a deployment whose neighbour has a large due backlog reads all of it on
-- every poll: measured with 100,000 due rows of another deployment and 50 of its own, the lease
-- took a sequential scan of 19 ms and the backlog one of 11 ms; with this index 0.07 ms and 0.2 ms.
-- A deployment's own large backlog still leases through send_retries_due, which stops after
-- the batch (the planner picks it then). The sweep (partial index send_log_claimed) and the
-- hand-off (send_log_handed_off) read only claimed or handed-off rows, a few per process, so
-- their filter needs no index. send_retries is a queue (small), so building this is brief.
CREATE INDEX IF NOT EXISTS send_retries_deployment_due ON send_retries (deployment, not_before);
