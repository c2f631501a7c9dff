-- The sender's per-workspace sending policy: quiet hours, rate and frequency caps.
-- Rows are optional: whatever a workspace does not set takes the sender's defaults
-- (RETARGET_QUIET_HOURS, RETARGET_RATE_WORKSPACE, RETARGET_FREQUENCY_CAPS). No foreign key to
-- workspaces, so a policy can be written before the workspace and outlive a test's workspace.

CREATE TABLE sending_policies (
    workspace_id  text PRIMARY KEY,
    quiet_start   time,                     -- recipient's local time; equal start and end = no quiet hours
    quiet_end     time,
    rate_per_s    real CHECK (rate_per_s >= 0),   -- 0 = no workspace limit
    rate_burst    integer CHECK (rate_burst >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL)),
    CHECK ((rate_per_s IS NULL) = (rate_burst IS NULL))
);

-- campaign '*': the recipient's messages of every campaign (these rows replace the default
-- caps); any other value: only that campaign's messages (added to the recipient-wide caps).
CREATE TABLE frequency_caps (
    workspace_id  text NOT NULL,
    campaign      text NOT NULL DEFAULT '*',
    max_messages  integer NOT NULL CHECK (max_messages >= 0),
    window_s      integer NOT NULL CHECK (window_s > 0),
    PRIMARY KEY (workspace_id, campaign, window_s)
);

-- caps count a recipient's recent admitted messages (sent, claimed or deferred) by created_at
CREATE INDEX send_log_recipient_recent ON send_log (workspace_id, recipient_hash, created_at);
