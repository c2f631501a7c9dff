-- The sender's retry queue: deferred messages (4xx, dropped connection) wait here until due.
-- The payload is the outbound record as it was consumed, so a retry sends the same bytes.
-- It holds the address in clear text: erasure must delete the rows of the erased recipient
-- (join send_log on message_id, match send_log.recipient_hash).

ALTER TABLE send_log ADD COLUMN last_reply text;  -- the relay's last reply text, addresses redacted

CREATE TABLE send_retries (
    message_id         text PRIMARY KEY REFERENCES send_log (message_id) ON DELETE CASCADE,
    payload            bytea NOT NULL,
    first_deferred_at  timestamptz NOT NULL,    -- the age bound counts from here
    not_before         timestamptz NOT NULL,
    leased_until       timestamptz              -- a retry worker holds the row until then
);

CREATE INDEX send_retries_due ON send_retries (not_before);

-- the stale-claim sweep looks for claims a dead process left behind
CREATE INDEX send_log_claimed ON send_log (claimed_at) WHERE state = 'claimed';
