-- Workspace configuration as data (issue #14, docs/management.md): every version of every
-- object (campaign, template, identity, policy, dkim) is kept; the version comes from one
-- sequence, so larger is newer across all objects and a number is never reused.
-- Additive only: the tables the services read today (workspaces, sending_policies,
-- frequency_caps) stay, and identity/policy changes are written to them as well.

CREATE TABLE config_versions (
    version       bigserial PRIMARY KEY,
    workspace_id  text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('campaign', 'template', 'identity', 'policy', 'dkim')),
    name          text NOT NULL,            -- '' for identity and policy
    body          jsonb,                    -- NULL when deleted
    deleted       boolean NOT NULL DEFAULT false,
    author        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,              -- NULL: committed, not yet on the change feed
    feed_offset   bigint,                   -- where the feed carries it (set with published_at)
    CHECK (deleted = (body IS NULL))
);

CREATE INDEX config_versions_by_object ON config_versions (workspace_id, kind, name, version DESC);
-- the relay's question: which versions are committed but not published
CREATE INDEX config_versions_unpublished ON config_versions (version) WHERE published_at IS NULL;

-- the newest version of each object (deleted markers included)
CREATE VIEW config_current AS
SELECT DISTINCT ON (workspace_id, kind, name) *
FROM config_versions
ORDER BY workspace_id, kind, name, version DESC;

-- what each service instance has applied of the feed (retarget.config.applied)
CREATE TABLE config_applied (
    service      text NOT NULL,
    instance     text NOT NULL,
    feed_offset  bigint NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, instance)
);
