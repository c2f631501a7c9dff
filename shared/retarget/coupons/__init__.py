"""Coupons a shop can redeem: campaign specs, the pure rules and the PostgreSQL store."""
