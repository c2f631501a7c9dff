"""The demo starts the shop beside the services, and its workspace lets the shop's pages send."""

from __future__ import annotations

from retarget.common.origins import normalise_origins, origin_allowed
from retarget.demo.services import PLAN, SHOP_PORT, SHOP_URL
from retarget.demo.workspace import DEMO_WORKSPACE


def test_the_demo_workspace_allows_the_shops_origin_as_browsers_name_it():
    allowed = DEMO_WORKSPACE.allowed_origins
    assert normalise_origins(allowed) == list(allowed)  # what `set-origins` would store
    assert origin_allowed(SHOP_URL, allowed)
    assert origin_allowed(f"http://localhost:{SHOP_PORT}", allowed)
    assert not origin_allowed("http://127.0.0.1:9999", allowed)


def test_the_shop_is_a_demo_service_without_metrics():
    shop = next(plan for plan in PLAN if plan.name == "shop")
    assert (shop.module, shop.port, shop.port_var) == ("demo.shop", SHOP_PORT, "RETARGET_SHOP_PORT")
    assert not shop.metrics  # the funnel reads /metrics of every service that has one
    assert len({plan.port for plan in PLAN}) == len(PLAN)
