"""The variables a campaign template sees, built from a trigger and its workspace.

Plain dicts, lists and strings only (nothing with methods worth calling), with prices
already formatted for the recipient's locale. URLs from trigger data (product pages, images,
the survey) arrive in events anyone with the public write key can send, so each is kept only
when it is an https URL on one of the workspace's link domains (links.LinkGuard), and
dropped (None, counted) otherwise: the product then renders without its link or image.

Optional fields are always present (None when unknown), so `{% if product.image_url %}`
works; required ones are left out when missing, so using them fails the render
(StrictUndefined) and the trigger is dead-lettered instead of rendering a blank:
  product: name            order: order_id
  products / order / trial / survey_url: only present when the trigger's data has them.
The full list, with examples, is in the composer's README.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retarget.common.link_domains import allowed_link_domains
from retarget.common.schemas import TriggerFired
from retarget.common.workspaces import Workspace
from retarget.composer.formatting import long_date, money, parse_instant
from retarget.composer.links import LinkGuard


class BadTriggerData(ValueError):
    """The trigger's data has the wrong shape (a list where an object belongs, say)."""


def _text(value: object) -> str | None:
    return str(value).strip() or None if value is not None else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadTriggerData(f"{what} must be an object, not {type(value).__name__}")
    return value


def product(raw: object, locale: str, guard: LinkGuard) -> dict[str, Any]:
    item = _mapping(raw, "a product")
    price, currency = _number(item.get("price")), _text(item.get("currency"))
    quantity = item.get("quantity")
    quantity = (
        quantity if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0 else 1
    )
    out: dict[str, Any] = {
        "product_id": _text(item.get("product_id")),
        "sku": _text(item.get("sku")),
        "price": price,
        "currency": currency,
        "price_display": money(price, currency, locale) if price is not None else None,
        "quantity": quantity,
        "total_display": money(price * quantity, currency, locale) if price is not None else None,
        "url": guard.keep(_text(item.get("url"))),
        "image_url": guard.keep(_text(item.get("image_url"))),
    }
    if name := _text(item.get("name")):
        out["name"] = name
    return out


def products(raw: object, locale: str, what: str, guard: LinkGuard) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise BadTriggerData(f"{what} must be a list, not {type(raw).__name__}")
    return [product(item, locale, guard) for item in raw]


def order(raw: object, locale: str, guard: LinkGuard) -> dict[str, Any]:
    item = _mapping(raw, "data.order")
    revenue, currency = _number(item.get("revenue")), _text(item.get("currency"))
    out: dict[str, Any] = {
        "revenue": revenue,
        "currency": currency,
        "revenue_display": money(revenue, currency, locale) if revenue is not None else None,
        "products": products(item.get("products") or [], locale, "data.order.products", guard),
    }
    if order_id := _text(item.get("order_id")):
        out["order_id"] = order_id
    return out


def trial(raw: object, locale: str) -> dict[str, Any]:
    item = _mapping(raw, "data.trial")
    started = parse_instant(item.get("started_at"))
    return {
        "plan": _text(item.get("plan")),
        "started_at": started,
        "started_on": long_date(started.date(), locale) if started else None,
    }


def incentive(raw: Mapping[str, Any], coupon: str, locale: str) -> dict[str, Any] | None:
    """{kind, value, amount ("10%", "€5.00"), code}; None when the campaign offers nothing."""
    if not raw:
        return None
    kind, value = _text(raw.get("kind")) or "", _number(raw.get("value"))
    if kind == "percent_off" and value is not None:
        amount: str | None = f"{value:g}%"
    elif kind == "amount_off" and value is not None:
        amount = money(value, _text(raw.get("currency")), locale)
    else:
        amount = None
    return {"kind": kind, "value": value, "amount": amount, "code": coupon}


def build_context(
    trigger: TriggerFired, sender: Workspace, links: dict[str, str], coupon: str, site_url: str
) -> dict[str, Any]:
    r = trigger.recipient
    locale = r.locale or "en"
    data = _mapping(trigger.data, "data")
    guard = LinkGuard(allowed_link_domains(sender))
    names = [n for n in (_text(r.first_name), _text(r.last_name)) if n]
    context: dict[str, Any] = {
        "campaign": trigger.campaign,
        "locale": locale,
        "recipient": {
            "email": r.email,
            "first_name": _text(r.first_name),
            "last_name": _text(r.last_name),
            "name": " ".join(names) or None,
            "locale": locale,
            "timezone": r.timezone,
        },
        "cart": [product(msgspec_dict(line), locale, guard) for line in trigger.cart],
        "incentive": incentive(trigger.incentive, coupon, locale),
        "coupon": coupon if trigger.incentive else None,
        "sender": {
            "name": sender.name,
            "from_name": sender.from_name,
            "from_email": sender.from_email,
            "reply_to": sender.reply_to,
            "postal_address": sender.postal_address,
            "site_url": site_url,
        },
        "links": links,
        "data": data,
    }
    if data.get("products") is not None:
        context["products"] = products(data["products"], locale, "data.products", guard)
    if data.get("order") is not None:
        context["order"] = order(data["order"], locale, guard)
    if data.get("trial") is not None:
        context["trial"] = trial(data["trial"], locale)
    if survey_url := guard.keep(_text(data.get("survey_url"))):
        context["survey_url"] = survey_url
    return context


def msgspec_dict(struct: Any) -> dict[str, Any]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}
