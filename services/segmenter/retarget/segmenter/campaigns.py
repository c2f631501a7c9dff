"""Campaign definitions: when a visitor enters, what cancels, how long to wait, what to send.

For now the product ships one built-in campaign (abandoned cart); declarative YAML files
replace this list in the campaigns work (issue 4), with the same Campaign shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Campaign:
    name: str
    entry_event: str
    wait: timedelta
    template: str
    exit_events: frozenset[str] = frozenset()
    restart_on_entry: bool = True  # a new entry event pushes the wait out again
    require_email: bool = True
    require_cart: bool = False
    incentive: dict[str, Any] = field(default_factory=dict)


def builtin_campaigns(cart_wait_s: float) -> list[Campaign]:
    return [
        Campaign(
            name="abandoned_cart",
            entry_event="Product Added",
            wait=timedelta(seconds=cart_wait_s),
            template="abandoned_cart",
            exit_events=frozenset({"Order Completed"}),
            require_cart=True,
            incentive={"kind": "percent_off", "value": 10},
        )
    ]
