"""The campaign file format: what a YAML file may say, validated field by field.

pydantic does the validation so an error names the field (`entry.count.within`) and the
reason; campaigns.py turns a valid file into the runtime `Campaign`. The reference with
examples is services/segmenter/README.md. It lives in retarget.config because a campaign is
also workspace configuration: the management API and the CLI validate with it before storing.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from retarget.config.experiment_schema import Percent, Variant, checked_variants

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# an event's time plus a wait (or a cooldown, or minus a count's window) must stay a date:
# "999999999d" is a timedelta, but adding it to 2026 overflows in the middle of a batch
MAX_DURATION = timedelta(days=3650)
# send_time: optimal looks at most this far past the wait for the person's hour: a day covers
# every hour; a week is the most a reminder can sensibly wait for one
MAX_SEND_DELAY = timedelta(days=7)


def parse_duration(value: Any) -> timedelta:
    """'30m', '4h', '7d', '1.5s' or a number of seconds; at most MAX_DURATION (ten years)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: write e.g. 90s, 30m, 4h, 7d, 2w")
    if not 0 <= seconds <= MAX_DURATION.total_seconds():  # also NaN and infinity
        raise ValueError(f"{value!r} is not a duration from 0 to {MAX_DURATION.days}d")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Scalar = str | int | float | bool

FILTER_OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PropertyTest(_Strict):
    """One test of one property; a bare scalar in the file means `eq`."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: list[Scalar] | None = Field(None, alias="in")
    not_in: list[Scalar] | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    exists: bool | None = None


def _as_test(value: Any) -> Any:
    return value if isinstance(value, dict | PropertyTest) else {"eq": value}


Where = dict[str, Annotated[PropertyTest, BeforeValidator(_as_test)]]


class EventMatch(_Strict):
    event: str = Field(min_length=1)
    where: Where = {}


class Count(_Strict):
    """Window aggregate: enter only when the entry event happened `at_least` times `within`."""

    at_least: int = Field(ge=1)
    within: Duration
    same: str | None = None  # count per value of this property (e.g. product_id)


class Entry(EventMatch):
    count: Count | None = None


class Conditions(_Strict):
    """Re-checked when the wait is over, because the visitor may have changed since entry."""

    has_email: bool = True
    consent: Literal["opt_in", "not_denied", "ignore"] = "not_denied"
    cart_not_empty: bool = False
    cart_value_at_least: float | None = None
    # fire only for a conversion propensity below this (no discount for visitors who would buy
    # anyway); a workspace without a trained model passes (retarget model train)
    propensity_below: float | None = Field(None, gt=0, le=1)


Snapshot = Literal["cart", "viewed_products", "trial", "order"]


class CampaignFile(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    template: str | None = None
    description: str = ""
    enabled: bool = True
    entry: Entry
    wait: Duration
    restart_wait_on_entry: bool = True
    exit: list[EventMatch] = []
    conditions: Conditions = Conditions()
    cooldown: Duration = timedelta(0)
    snapshot: list[Snapshot] = []
    incentive: dict[str, Any] = {}
    data: dict[str, Any] = {}
    emit_on_due: str | None = None  # records this event on the profile when the wait is over
    # when the wait is over: send at once, or at the person's best hour within max_delay
    send_time: Literal["immediate", "optimal"] = "immediate"
    max_delay: Duration | None = None

    @model_validator(mode="after")
    def _optimal_send_time_is_bounded(self) -> CampaignFile:
        if self.send_time == "optimal" and self.max_delay is None:
            raise ValueError(
                "send_time: optimal needs max_delay (e.g. 24h): how long past the wait it may hold"
            )
        if self.send_time == "immediate" and self.max_delay is not None:
            raise ValueError("max_delay applies only to send_time: optimal")
        if self.max_delay is not None and self.max_delay > MAX_SEND_DELAY:
            raise ValueError(f"max_delay may be at most {MAX_SEND_DELAY.days}d")
        return self

    @field_validator("incentive")
    @classmethod
    def _coupon_is_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        from retarget.coupons.spec import normalized_incentive  # it uses Duration, defined here

        return normalized_incentive(value)

    variants: list[Variant] = []  # A/B arms (experiment_schema.py, docs/experiments.md)
    holdout: Percent = 0.0  # share of eligible profiles held out as the control group

    @field_validator("variants")
    @classmethod
    def _variants_distinct(cls, value: list[Variant]) -> list[Variant]:
        return checked_variants(value)

    @field_validator("exit")
    @classmethod
    def _exit_differs_from_entry(cls, value: list[EventMatch], info: Any) -> list[EventMatch]:
        entry = info.data.get("entry")
        if entry is not None and any(e.event == entry.event and not e.where for e in value):
            raise ValueError(f"{entry.event!r} is both the entry and an unconditional exit")
        return value
