"""The management API's routers, in the order main.create_app includes them."""

from __future__ import annotations

from retarget.ingest.management import (
    campaigns,
    coupons,
    dkim,
    live,
    policy,
    reputation,
    suppressions,
    templates,
)

routers = [
    campaigns.router,
    templates.router,
    policy.router,
    suppressions.router,
    live.router,
    dkim.router,
    coupons.router,
    reputation.router,
]
