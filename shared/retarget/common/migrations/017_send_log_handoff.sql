-- Outcomes of claims handed off in a rebalance (services/sender/README.md, "never lose an
-- outcome"). A sender that meets a message another process has claimed does not send it and
-- commits past it, trusting the claimant to publish the outcome. If the claimant records its
-- outcome and then dies before producing it, nothing would ever publish it: so the partition's
-- new owner marks the row handed_off, and the retry loop publishes the outcome of every
-- handed-off row once it is final (perhaps a second time: the deliveries topic is keyed by
-- message id and its readers take the last record). Additive: a constant default, no rewrite.
ALTER TABLE send_log ADD COLUMN IF NOT EXISTS handed_off boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS send_log_handed_off ON send_log (message_id) WHERE handed_off;
