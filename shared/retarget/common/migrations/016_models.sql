-- Conversion-propensity models, one row per trained version of a workspace's model
-- (`retarget model train`). The segmenter loads the newest version of each workspace.
-- `model` is JSON data (a standardised logistic regression), never a pickle: reading it runs
-- no code, whoever could write this table.
CREATE TABLE IF NOT EXISTS propensity_models (
    workspace_id  text NOT NULL REFERENCES workspaces (id),
    version       integer NOT NULL CHECK (version >= 1),
    kind          text NOT NULL,
    model         jsonb NOT NULL,
    features      text[] NOT NULL,
    metrics       jsonb NOT NULL DEFAULT '{}',
    trained_until timestamptz NOT NULL,       -- no event after it was used: evaluate after it
    horizon_s     double precision NOT NULL CHECK (horizon_s > 0),
    trained_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, version)
);
