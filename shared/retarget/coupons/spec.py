"""A campaign's `incentive.coupon`: how the codes its emails show are issued.

    incentive: {kind: percent_off, value: 10, coupon: {mode: unique, expires_after: 7d}}
    incentive: {kind: amount_off, value: 5, currency: EUR, coupon: {mode: pool, pool: spring}}

`unique`: one single-use code per recipient and trigger, derived from the trigger id (a replay
gets the same code) and stored before the email is published. `pool`: a code the shop uploaded
to the named pool, claimed once per trigger. A campaign without `coupon` renders its derived
code as before, but stores nothing (nothing can redeem it).

The campaign file is validated with `CouponSpec`; the trigger carries the incentive as plain
JSON (expires_after in seconds), which `coupon_spec` reads back in the composer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from retarget.config.campaign_schema import Duration

POOL_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
DEFAULT_EXPIRY = timedelta(days=7)


class CouponSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["unique", "pool"]
    expires_after: Duration = DEFAULT_EXPIRY
    pool: str | None = Field(None, pattern=POOL_NAME)

    @model_validator(mode="after")
    def _pool_named_in_pool_mode_only(self) -> CouponSpec:
        if self.mode == "pool" and self.pool is None:
            raise ValueError("mode pool needs `pool`: the name of the pool the shop uploaded codes to")
        if self.mode == "unique" and self.pool is not None:
            raise ValueError("`pool` only goes with mode pool (unique codes are derived per recipient)")
        if self.expires_after <= timedelta(0):
            raise ValueError("expires_after must be more than 0 (a coupon nobody can redeem is no offer)")
        return self

    def as_json(self) -> dict[str, Any]:
        """What the trigger carries: JSON only, the duration in seconds."""
        out: dict[str, Any] = {"mode": self.mode, "expires_after": self.expires_after.total_seconds()}
        if self.pool is not None:
            out["pool"] = self.pool
        return out


def normalized_incentive(incentive: dict[str, Any]) -> dict[str, Any]:
    """The campaign file's incentive with its coupon validated and written as the trigger carries it."""
    spec = coupon_spec(incentive)
    return incentive if spec is None else {**incentive, "coupon": spec.as_json()}


def coupon_spec(incentive: dict[str, Any]) -> CouponSpec | None:
    """The trigger's coupon spec; None when the campaign has none. ValueError when it is malformed
    (a trigger from a hand-written record: campaign files are validated before they are used)."""
    if not incentive or "coupon" not in incentive:
        return None
    try:
        return CouponSpec.model_validate(incentive["coupon"])
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in ("coupon", *error["loc"]))
        raise ValueError(f"{where}: {error['msg'].removeprefix('Value error, ')}") from None
