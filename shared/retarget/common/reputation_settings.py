"""The reputation guard's settings: the sender judges and holds with them, ingest's management
API and the CLI show the rates against them (docs/deliverability.md, "Reputation guard")."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from retarget.common.reputation import Thresholds


class ReputationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETARGET_REPUTATION_", extra="ignore")

    window_h: int = Field(
        24, ge=1, le=24 * 30, description="Rolling window of the complaint and hard-bounce rates, in hours."
    )
    min_sent: int = Field(
        1000,
        ge=1,
        description="Messages sent in the window before a workspace's or domain's rates are judged.",
    )
    complaint_warn: float = Field(0.001, gt=0, le=1, description="Complaint rate that is logged.")
    complaint_pause: float = Field(
        0.003, gt=0, le=1, description="Complaint rate that pauses the workspace's marketing mail."
    )
    hard_bounce_warn: float = Field(0.01, gt=0, le=1, description="Hard-bounce rate that is logged.")
    hard_bounce_pause: float = Field(
        0.02, gt=0, le=1, description="Hard-bounce rate that pauses the workspace's marketing mail."
    )
    check_s: float = Field(
        30.0, gt=0, description="How often the rates are judged and the paused workspaces read."
    )
    hold_s: float = Field(
        300.0, gt=0, description="How long a held message waits before its pause is checked again."
    )
    transactional_campaigns: str = Field(
        "", description="Campaigns never held by a pause (transactional mail), comma separated."
    )

    def thresholds(self) -> Thresholds:
        return Thresholds(
            complaint_warn=self.complaint_warn,
            complaint_pause=self.complaint_pause,
            hard_bounce_warn=self.hard_bounce_warn,
            hard_bounce_pause=self.hard_bounce_pause,
            min_sent=self.min_sent,
        )

    def transactional(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.transactional_campaigns.split(",") if c.strip())
