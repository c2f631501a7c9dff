-- The web origins whose pages may send a workspace's events from a browser (CORS):
-- exact origins (https://shop.example, http://127.0.0.1:8123) or https://*.shop.example
-- (retarget.common.origins). Empty: no browser origin; server-side senders are unaffected.
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS allowed_origins text[] NOT NULL DEFAULT '{}';
