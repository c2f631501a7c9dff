-- Coupons a shop can redeem (docs/deliverability.md#coupons). Additive: new tables only.
--
-- coupons: every code an email showed, stored by the composer before the email is published.
-- One row per trigger (a replay finds it and shows the same code) and one per code within a
-- workspace (a pool code is handed out once). redeemed_at/order_id are set once, by the
-- redemption endpoint or `retarget coupons redeem`.
CREATE TABLE IF NOT EXISTS coupons (
    workspace_id text NOT NULL,
    code text NOT NULL,
    campaign text NOT NULL,
    trigger_id text NOT NULL,
    profile_id text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('unique', 'pool')),
    pool text,
    issued_at timestamptz NOT NULL,
    expires_at timestamptz,
    redeemed_at timestamptz,
    order_id text,
    PRIMARY KEY (workspace_id, code),
    UNIQUE (workspace_id, trigger_id)
);

-- coupon_pool_codes: codes a shop uploaded to a named pool; claimed_by is the trigger that
-- got it (NULL: still free). A code belongs to one pool of its workspace.
CREATE TABLE IF NOT EXISTS coupon_pool_codes (
    workspace_id text NOT NULL,
    pool text NOT NULL,
    code text NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    claimed_at timestamptz,
    PRIMARY KEY (workspace_id, code)
);
-- the free codes of a pool, in upload order: the claim's scan
CREATE INDEX IF NOT EXISTS coupon_pool_codes_free
    ON coupon_pool_codes (workspace_id, pool, uploaded_at) WHERE claimed_by IS NULL;

-- A secret key may have scope `coupons`: the shop backend's key for checking and redeeming
-- codes, which can do nothing else. Widening the check keeps every existing key valid.
ALTER TABLE secret_keys DROP CONSTRAINT IF EXISTS secret_keys_scopes_check;
ALTER TABLE secret_keys ADD CONSTRAINT secret_keys_scopes_check
    CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['privacy', 'admin', 'coupons']);
