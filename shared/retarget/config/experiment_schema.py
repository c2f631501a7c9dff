"""A campaign's experiment, as its file writes it: `variants` (arms with weights) and `holdout`
(the share of eligible profiles that gets nothing: the control group). docs/experiments.md.

Arm names become a Prometheus label (`arm`), so they are bounded like campaign names: a
pattern, at most MAX_VARIANTS a campaign, and two reserved names for the control groups.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

MAX_VARIANTS = 8
HOLDOUT_ARM = "holdout"  # the campaign's own control group
GLOBAL_HOLDOUT_ARM = "global_holdout"  # the workspace's control group: no campaign mail at all
DEFAULT_ARM = "default"  # a campaign without variants: its one treated arm
RESERVED_ARMS = frozenset({HOLDOUT_ARM, GLOBAL_HOLDOUT_ARM})
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
MAX_HOLDOUT_PERCENT = 50.0  # more than half held out is a campaign switched off, not a control


def parse_percent(value: Any) -> float:
    """'10%' (or 0) as the fraction 0.10; the '%' is required, so 0.1 and 10 can't be confused."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    match = _PERCENT.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a percentage: write e.g. 10%")
    percent = float(match.group(1))
    if not 0 <= percent <= MAX_HOLDOUT_PERCENT:
        raise ValueError(f"{value!r}: a holdout is from 0% to {MAX_HOLDOUT_PERCENT:g}%")
    return percent / 100


Percent = Annotated[float, BeforeValidator(parse_percent)]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a weight is a finite number above 0")
    return value


class Variant(BaseModel):
    """One treated arm: what it changes from the campaign (template, subject, incentive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    # checked after parsing: the string "inf" (or "1e999") only becomes infinity then
    weight: Annotated[float, AfterValidator(_finite)] = Field(gt=0)
    template: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")  # the composer's names
    subject: str | None = Field(None, min_length=1, max_length=300)  # a one-line Jinja template
    incentive: dict[str, Any] | None = None  # replaces the campaign's incentive when set

    @field_validator("subject")
    @classmethod
    def _subject_parses(cls, value: str | None) -> str | None:
        # the composer renders it (same delimiters, no extensions): a syntax error found only
        # there would dead-letter every message of the arm
        import jinja2

        if value is not None:
            try:
                jinja2.Environment().parse(value)
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"the subject is not a valid template: {exc.message}") from exc
        return value

    @field_validator("incentive")
    @classmethod
    def _coupon_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # the same coupon rules (and normal form) as the campaign's own incentive
        from retarget.coupons.spec import normalized_incentive

        return None if value is None else normalized_incentive(value)


def checked_variants(variants: list[Variant]) -> list[Variant]:
    names = [v.name for v in variants]
    if len(names) > MAX_VARIANTS:
        raise ValueError(f"{len(names)} variants; at most {MAX_VARIANTS}")
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ValueError(f"variant name {duplicate!r} is used twice")
    reserved = sorted(set(names) & RESERVED_ARMS)
    if reserved:
        raise ValueError(f"variant name {reserved[0]!r} is reserved for the control group")
    subject = next((v.subject for v in variants if v.subject and "\n" in v.subject), None)
    if subject is not None:
        raise ValueError("a variant's subject is one line")
    return variants
