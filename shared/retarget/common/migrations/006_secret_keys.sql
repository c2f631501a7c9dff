-- Secret keys: the server-side credentials of a workspace, for the endpoints that read or
-- change people's data (privacy: export and erase) or manage the workspace (admin). Unlike
-- write keys, which SDKs embed in public pages, a secret key must stay on the customer's
-- servers. Only sha256(key) is stored; the key is shown once, when created.

CREATE TABLE secret_keys (
    key_hash      bytea PRIMARY KEY,        -- sha256 of the key; the key itself is never stored
    key_prefix    text NOT NULL,            -- first characters, to recognise a key in listings
    workspace_id  text NOT NULL REFERENCES workspaces (id),
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['privacy', 'admin']),
    label         text NOT NULL DEFAULT '', -- what the key is for, e.g. "CRM erasure job"
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE INDEX secret_keys_workspace ON secret_keys (workspace_id);
