"""What a template gets: the data a campaign's `snapshot` names, in the shapes the templates read.

Entry-time parts (the order, the trial) are copied from the entry event when the wait
starts, because later events may change them; fire-time parts (the cart, the viewed
products) are read from the profile when the trigger fires, because that is what the
visitor left behind.

| snapshot          | where it goes     | shape                                                        |
|-------------------|-------------------|--------------------------------------------------------------|
| `cart`            | `trigger.cart`    | CartLine list (product_id, name, price, quantity, currency, url, image_url) |
| `viewed_products` | `data["products"]`| list of {product_id, name, price, currency, url, image_url}  |
| `trial`           | `data["trial"]`   | {plan, started_at}                                           |
| `order`           | `data["order"]`   | {order_id, revenue, currency, products}                      |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retarget.common.schemas import CartLine, TrackedEvent
from retarget.segmenter.state import Pending, Profile

if TYPE_CHECKING:
    from retarget.segmenter.campaigns import Campaign

MAX_PRODUCTS = 6


def at_entry(campaign: Campaign, event: TrackedEvent) -> dict[str, Any]:
    snap: dict[str, Any] = {}
    if "trial" in campaign.snapshot:
        snap["trial"] = trial(event)
    if "order" in campaign.snapshot:
        snap["order"] = order(event)
    return snap


def at_fire(profile: Profile, campaign: Campaign, pending: Pending) -> tuple[list[CartLine], dict[str, Any]]:
    cart: list[CartLine] = []
    data: dict[str, Any] = {}
    if "cart" in campaign.snapshot:
        cart = [item.line for item in sorted(profile.cart.values(), key=lambda i: i.added_at)]
    if "viewed_products" in campaign.snapshot:
        data["products"] = viewed_products(profile, pending)
    for part in ("trial", "order"):
        if part in campaign.snapshot:
            data[part] = pending.snapshot.get(part, {})
    data.update(campaign.data)
    return cart, data


def viewed_products(profile: Profile, pending: Pending) -> list[dict[str, Any]]:
    """Products viewed since this wait started and not in the cart, newest first."""
    viewed = [v for v in profile.viewed if v.at >= pending.started_at and v.product_id not in profile.cart]
    return [
        {
            "product_id": v.product_id,
            "name": v.name or v.product_id,
            "price": v.price,
            "currency": v.currency or "USD",
            "url": v.url,
            "image_url": v.image_url,
        }
        for v in viewed[:MAX_PRODUCTS]
    ]


def trial(event: TrackedEvent) -> dict[str, Any]:
    props = event.properties
    plan = props.get("trial_plan_name") or props.get("plan") or props.get("plan_name")
    started = props.get("trial_start_date")
    return {
        "plan": plan if isinstance(plan, str) else None,
        "started_at": started if isinstance(started, str) else event.timestamp.isoformat(),
    }


def order(event: TrackedEvent) -> dict[str, Any]:
    props = event.properties
    currency: str = props["currency"] if isinstance(props.get("currency"), str) else "USD"
    revenue = number_or_none(props.get("revenue"))
    if revenue is None:
        revenue = number_or_none(props.get("total"))
    raw_products = props.get("products")
    products = [_order_product(p, currency) for p in (raw_products if isinstance(raw_products, list) else [])]
    return {
        "order_id": str(props["order_id"]) if props.get("order_id") is not None else None,
        "revenue": revenue,
        "currency": currency,
        "products": [p for p in products if p is not None],
    }


def _order_product(raw: Any, currency: str) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    product_id = raw.get("product_id") or raw.get("sku")
    quantity = number_or_none(raw.get("quantity"))
    return {
        "product_id": str(product_id) if product_id is not None else None,
        "name": raw.get("name") if isinstance(raw.get("name"), str) else None,
        "price": number_or_none(raw.get("price")),
        "quantity": int(quantity) if quantity is not None else 1,
        "currency": raw.get("currency") if isinstance(raw.get("currency"), str) else currency,
        "url": raw.get("url") if isinstance(raw.get("url"), str) else None,
        "image_url": raw.get("image_url") if isinstance(raw.get("image_url"), str) else None,
    }


def number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
