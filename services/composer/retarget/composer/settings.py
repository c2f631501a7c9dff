"""Composer settings (env prefix RETARGET_)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from retarget.common.settings import CommonSettings, refuse_http_public_url


class ComposerSettings(CommonSettings):
    ops_port: int = Field(18082, description="Port of /healthz, /readyz and /metrics.")
    link_secret: SecretStr = Field(description="HMAC key for tracking and unsubscribe links. No default.")
    public_url: str = Field(
        "http://127.0.0.1:18080",
        description="Public base URL of ingest's link endpoints; https:// outside development.",
    )
    link_ttl_days: int = Field(60, ge=30, description="How long open and click links work.")
    unsubscribe_ttl_days: int = Field(
        400,
        ge=30,
        description="How long unsubscribe links (one-click, mailto, footer) work: a year and more, "
        "since people unsubscribe from old mail; never under CAN-SPAM's 30 days.",
    )
    templates_dir: str | None = Field(
        None,
        description="Folder of the bundled campaign templates (a workspace's own come from the config feed); the shipped ones if unset.",
    )
    workspace_cache_s: float = Field(
        30.0,
        ge=0,
        description="How long workspace settings are cached (an identity change on the feed drops them at once).",
    )
    template_cache_size: int = Field(
        10_000,
        ge=1,
        description="Compiled templates kept, per (workspace, template, version); least recently used go.",
    )
    template_cache_chars: int = Field(
        20_000_000,
        ge=1,
        description="...and their source, in characters, kept at most (a compiled template takes ~15 bytes a character).",
    )

    @model_validator(mode="after")
    def _https_outside_development(self) -> Self:
        refuse_http_public_url(self.environment, self.public_url)
        return self
