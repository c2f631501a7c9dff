"""The sender's SQL, one statement per constant; pg_store.py runs them.

Array parameters (unnest) carry a whole group-committed batch in one statement.

Deployments that share the database (staging and production, blue/green, parallel test stacks)
are told apart by `deployment`, their topic prefix (migration 018): a sender stamps its claims
and retry rows with it, and its retry loop takes only rows of its own deployment or of none
(''; rows written before the migration, which any deployment may take). Otherwise a sender
would retry another deployment's mail through its own relay and publish the outcome on its own
deliveries topic, where the other deployment never sees it.
"""

from __future__ import annotations

from retarget.sender.rules import CAMPAIGN_UNSUBSCRIBED, UNCONFIRMED_CLAIM

ROW = "message_id, workspace_id, campaign, profile_id, state, attempts, last_code, last_reason, updated_at"

# A workspace entry wins over a global one, and both over a campaign-only unsubscribe (migration 004).
SUPPRESSED = f"""
WITH k AS (SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[]) AS k (ws, h, c))
SELECT DISTINCT ON (ws, h, c) ws, h, c, reason FROM (
    SELECT k.ws, k.h, k.c, s.reason, CASE WHEN s.workspace_id = '*' THEN 1 ELSE 0 END AS rank
    FROM k JOIN suppressions s ON s.email_hash = k.h AND s.workspace_id IN (k.ws, '*')
    UNION ALL
    SELECT k.ws, k.h, k.c, '{CAMPAIGN_UNSUBSCRIBED}', 2
    FROM k JOIN campaign_unsubscribes u ON u.workspace_id = k.ws AND u.email_hash = k.h AND u.campaign = k.c
) found
ORDER BY ws, h, c, rank
"""

CLAIM = f"""
INSERT INTO send_log (message_id, workspace_id, campaign, profile_id, recipient_hash, state,
                      attempts, last_reason, claimed_at, created_at, updated_at, deployment)
SELECT m, w, c, p, h, s, CASE WHEN s = 'claimed' THEN 1 ELSE 0 END, r,
       CASE WHEN s = 'claimed' THEN t END, t, t, $9::text
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[],
            $8::timestamptz[]) AS x (m, w, c, p, h, s, r, t)
ON CONFLICT (message_id) DO NOTHING
RETURNING {ROW}
"""

KNOWN = f"SELECT {ROW} FROM send_log WHERE message_id = ANY($1::text[])"

CAP_HISTORY = """
SELECT l.workspace_id, l.recipient_hash, l.campaign, l.created_at
FROM unnest($1::text[], $2::bytea[]) AS k (ws, h)
JOIN send_log l ON l.workspace_id = k.ws AND l.recipient_hash = k.h
WHERE l.created_at > $3 AND l.state IN ('sent', 'claimed', 'deferred')
"""

NEW_RETRIES = """
INSERT INTO send_retries (message_id, payload, first_deferred_at, not_before, leased_until, deployment)
SELECT *, NULL::timestamptz, $5::text
FROM unnest($1::text[], $2::bytea[], $3::timestamptz[], $4::timestamptz[])
ON CONFLICT (message_id) DO NOTHING
"""

# The retry loop leased the row, so it is this deployment's or a pre-migration one (''), which
# becomes this deployment's with the claim: a sweep elsewhere must not close it with its lease.
RECLAIM = f"""
UPDATE send_log SET state = 'claimed', attempts = attempts + 1, claimed_at = $2, updated_at = $2,
                    deployment = $3
WHERE message_id = $1 AND state = 'deferred'
RETURNING {ROW}
"""

# The reputation guard's counts (migration 014) are added in the same statement as the
# outcome, so a sent or hard-bounced message is counted exactly when it is recorded. `sent`
# counts both: a message the recipient's server refused as a bad address was sent to it.
FINISH = """
WITH done AS (
    UPDATE send_log l
    SET state = x.s, last_reason = x.r, last_code = x.c, last_reply = x.t, updated_at = x.at,
        sent_at = CASE WHEN x.s = 'sent' THEN x.at ELSE l.sent_at END
    FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[], $7::text[])
         AS x (m, s, r, c, t, at, d)
    WHERE l.message_id = x.m AND l.state = 'claimed'
    RETURNING l.message_id, l.workspace_id, x.s, x.r, x.at, x.d
), counted AS (
    INSERT INTO reputation_counts (workspace_id, domain, bucket, sent, hard_bounces)
    SELECT workspace_id, lower(d), date_bin('1 hour', at, 'epoch'),
           count(*), count(*) FILTER (WHERE r = 'hard_bounce')
    FROM done WHERE s = 'sent' OR r = 'hard_bounce'
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (workspace_id, domain, bucket) DO UPDATE
    SET sent = reputation_counts.sent + EXCLUDED.sent,
        hard_bounces = reputation_counts.hard_bounces + EXCLUDED.hard_bounces
)
SELECT message_id FROM done
"""

SUPPRESS = """
INSERT INTO suppressions (workspace_id, email_hash, reason, source, created_at)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::text[], $5::timestamptz[])
ON CONFLICT (workspace_id, email_hash) DO NOTHING
"""

# A conflict is a retry deferred again, by the deployment that leased (and so owns) it.
DEFER = """
INSERT INTO send_retries (message_id, payload, first_deferred_at, not_before, leased_until, deployment)
SELECT *, NULL::timestamptz, $5::text
FROM unnest($1::text[], $2::bytea[], $3::timestamptz[], $4::timestamptz[])
ON CONFLICT (message_id) DO UPDATE
SET not_before = EXCLUDED.not_before, leased_until = NULL, deployment = EXCLUDED.deployment
"""

BACKLOG = "SELECT count(*), min(first_deferred_at) FROM send_retries WHERE deployment IN ($1, '')"

LEASE = """
UPDATE send_retries SET leased_until = $2
WHERE message_id IN (
    SELECT message_id FROM send_retries
    WHERE not_before <= $1 AND (leased_until IS NULL OR leased_until <= $1) AND deployment IN ($4, '')
    ORDER BY not_before LIMIT $3
    FOR UPDATE SKIP LOCKED)
RETURNING message_id, payload, first_deferred_at
"""

# Locked, not yet changed: the outcome is published first, then the rows are closed (SWEEP_CLOSE)
# in the same transaction, so a crash in between leaves them claimed and swept again.
SWEEP = f"""
SELECT {ROW} FROM send_log WHERE state = 'claimed' AND claimed_at < $1 AND deployment IN ($2, '')
FOR UPDATE SKIP LOCKED
"""

SWEEP_CLOSE = f"""
UPDATE send_log SET state = 'failed', last_reason = '{UNCONFIRMED_CLAIM}', updated_at = $2, handed_off = false
WHERE message_id = ANY($1::text[])
"""

# A claim met by a partition's new owner (migration 017): whatever its state now, its outcome
# is published by the retry loop once final, in case the claimant dies before publishing it.
# One row per statement (pg_store.hand_off): never a row's lock held while waiting for another's.
HAND_OFF = "UPDATE send_log SET handed_off = true WHERE message_id = $1"

# Locked like SWEEP: published first, then unmarked in the same transaction.
HANDED_OFF_FINAL = f"""
SELECT {ROW} FROM send_log
WHERE handed_off AND state NOT IN ('claimed', 'deferred') AND deployment IN ($2, '')
LIMIT $1 FOR UPDATE SKIP LOCKED
"""

HANDED_OFF_DONE = "UPDATE send_log SET handed_off = false WHERE message_id = ANY($1::text[])"
