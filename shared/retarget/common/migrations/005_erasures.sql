-- GDPR erasure requests, kept as proof that they were carried out. Only hashes of the
-- person's identifiers are stored: the record must not bring back what it erased.

CREATE TABLE erasures (
    id              bigserial PRIMARY KEY,
    workspace_id    text NOT NULL,
    email_hashes    bytea[] NOT NULL,       -- sha256 of each normalised address erased
    user_id_hash    bytea,                  -- sha256 of the userId, when given
    source          text NOT NULL,          -- 'api' or 'cli'
    send_log_rows   integer NOT NULL,       -- rows whose personal data was scrubbed
    retries_deleted integer NOT NULL,       -- queued messages (clear-text address) deleted
    requested_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(email_hashes) > 0 OR user_id_hash IS NOT NULL)
);

CREATE INDEX erasures_subject ON erasures USING gin (email_hashes);
CREATE INDEX send_log_profile ON send_log (workspace_id, profile_id);
