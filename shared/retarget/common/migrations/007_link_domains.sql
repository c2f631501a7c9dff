-- The domains a workspace's emails may link to (product pages, images, any tracked click):
-- each listed domain and its subdomains, https only (retarget.common.link_domains).
-- NULL: not configured, so the domain of from_email (the workspace's own site, the one the
-- composer's shop link already points at); an empty array: no links anywhere.
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS link_domains text[];
