-- Tenants, their write keys, suppression lists and the send log.
-- Addresses are stored as sha256(lower(trim(email))) wherever the raw value is not needed,
-- so erasure leaves nothing readable behind and a suppression still matches.

CREATE TABLE workspaces (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    from_name       text NOT NULL,
    from_email      text NOT NULL,
    reply_to        text,
    postal_address  text NOT NULL,          -- CAN-SPAM: a valid physical postal address
    timezone        text NOT NULL DEFAULT 'UTC',
    consent_mode    text NOT NULL DEFAULT 'opt_out' CHECK (consent_mode IN ('opt_in', 'opt_out')),
    dkim_selector   text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE write_keys (
    key_hash      bytea PRIMARY KEY,        -- sha256 of the key; the key itself is never stored
    key_prefix    text NOT NULL,            -- first characters, to recognise a key in listings
    workspace_id  text NOT NULL REFERENCES workspaces (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE suppressions (
    workspace_id  text NOT NULL,            -- '*' means every workspace (global list)
    email_hash    bytea NOT NULL,
    reason        text NOT NULL CHECK (reason IN ('unsubscribed', 'hard_bounce', 'complaint', 'erased', 'manual')),
    source        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, email_hash)
);

CREATE TABLE send_log (
    message_id      text PRIMARY KEY,       -- derived from the trigger id: the idempotency key
    workspace_id    text NOT NULL,
    campaign        text NOT NULL,
    profile_id      text NOT NULL,
    recipient_hash  bytea NOT NULL,
    state           text NOT NULL CHECK (state IN ('claimed', 'sent', 'deferred', 'bounced', 'suppressed',
                                                   'capped', 'expired', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_code       integer,
    last_reason     text,
    claimed_at      timestamptz,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- frequency caps count a recipient's recent sends across campaigns
CREATE INDEX send_log_recipient_sent ON send_log (workspace_id, recipient_hash, sent_at) WHERE state = 'sent';
