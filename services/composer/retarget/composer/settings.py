"""Composer settings (env prefix RETARGET_)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from retarget.common.settings import CommonSettings


class ComposerSettings(CommonSettings):
    ops_port: int = Field(18082, description="Port of /healthz, /readyz and /metrics.")
    link_secret: SecretStr = Field(description="HMAC key for tracking and unsubscribe links. No default.")
    public_url: str = Field(
        "http://127.0.0.1:18080", description="Public base URL of ingest's link endpoints."
    )
    link_ttl_days: int = Field(
        60, ge=30, description="How long links work (CAN-SPAM: opt-out works >= 30 days)."
    )
    templates_dir: str | None = Field(
        None, description="Folder of campaign templates; the bundled ones if unset."
    )
    workspace_cache_s: float = Field(30.0, ge=0, description="How long workspace settings are cached.")
