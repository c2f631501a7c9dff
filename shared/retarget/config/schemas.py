"""The bodies of the kinds a workspace writes besides campaigns (campaign_schema.py):
template, identity and policy. pydantic names the field of any error.

The checks are the ones the services depend on: an identity's addresses go into headers
(the composer's own address rule), its postal address is the law's (CAN-SPAM), its timezone
places the quiet hours; a policy's values are what the sender's tables can hold.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from retarget.common.link_domains import normalise_domain
from retarget.common.origins import normalise_origin
from retarget.composer.addresses import parse_address
from retarget.config.campaign_schema import Duration
from retarget.config.experiment_schema import Percent

MAX_SUBJECT = 1_000
MAX_PART = 200_000  # characters of one template part (html or text)
INT32_MAX = 2**31 - 1  # sending_policies.rate_burst, frequency_caps.max_messages and window_s
MAX_RATE = 1e6  # messages per second; sending_policies.rate_per_s is a real (float4)
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TemplateBody(_Strict):
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT)
    html: str | None = Field(None, max_length=MAX_PART)
    text: str | None = Field(None, max_length=MAX_PART)

    @field_validator("subject", mode="before")
    @classmethod
    def _subject_given(cls, value: object) -> object:
        if value is None:  # a folder without <name>.subject.txt
            raise ValueError("required")
        return value

    @model_validator(mode="after")
    def _has_a_body(self) -> TemplateBody:
        if not self.html and not self.text:
            raise ValueError("html or text is required")
        return self


def _address(value: str) -> str:
    parse_address(value)  # BadAddress (a ValueError) says what is wrong
    return value.strip()


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a known IANA timezone such as Europe/Paris") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError(f"{value!r} is not a time HH:MM such as 21:00")
    return value


Address = Annotated[str, AfterValidator(_address)]
Domain = Annotated[str, AfterValidator(normalise_domain)]
Origin = Annotated[str, AfterValidator(normalise_origin)]
MAX_ORIGINS = 100


class IdentityBody(_Strict):
    from_name: Annotated[str, AfterValidator(_not_blank)] = Field(max_length=200)
    from_email: Address
    reply_to: Address | None = None
    postal_address: Annotated[str, AfterValidator(_not_blank)] = Field(max_length=500)  # CAN-SPAM
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    link_domains: list[Domain] | None = None  # None: the domain of from_email
    # where its browser tracking runs (CORS; retarget.common.origins); empty: no browser origin
    allowed_origins: list[Origin] = Field(default_factory=list, max_length=MAX_ORIGINS)

    @field_validator("allowed_origins")
    @classmethod
    def _no_duplicate_origins(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class QuietHours(_Strict):
    start: Annotated[str, AfterValidator(_hhmm)]
    end: Annotated[str, AfterValidator(_hhmm)]

    def times(self) -> tuple[time, time]:
        return time.fromisoformat(self.start), time.fromisoformat(self.end)


class Rate(_Strict):
    per_s: float = Field(ge=0, le=MAX_RATE)  # 0: no workspace limit
    burst: int = Field(ge=0, le=INT32_MAX)

    @model_validator(mode="after")
    def _limited_needs_a_burst(self) -> Rate:
        if self.per_s > 0 and self.burst < 1:
            raise ValueError("a limited rate needs a burst of at least 1")
        return self


class Cap(_Strict):
    campaign: str = Field("*", min_length=1)  # "*": every campaign of the recipient
    max_messages: int = Field(gt=0, le=INT32_MAX)
    window: Duration

    @field_validator("window")
    @classmethod
    def _window_fits(cls, value: timedelta) -> timedelta:
        if value > timedelta(seconds=INT32_MAX):
            raise ValueError(f"at most {INT32_MAX}s (frequency_caps.window_s is an integer)")
        return value

    @model_validator(mode="after")
    def _window_is_positive(self) -> Cap:
        if self.window < timedelta(seconds=1):
            raise ValueError("window must be at least 1s")
        return self


class PolicyBody(_Strict):
    consent_mode: Literal["opt_in", "opt_out"] = "opt_out"
    quiet_hours: QuietHours | None = None
    rate: Rate | None = None
    caps: list[Cap] = []
    # a share of the workspace's profiles that gets no campaign mail at all (docs/experiments.md)
    global_holdout: Percent = 0.0

    @model_validator(mode="after")
    def _one_cap_per_campaign_and_window(self) -> PolicyBody:
        seen = [(c.campaign, int(c.window.total_seconds())) for c in self.caps]  # whole seconds stored
        if len(seen) != len(set(seen)):
            raise ValueError("caps: two caps with the same campaign and window")
        return self
