"""The demo shop's settings: where it listens, where the browser sends events, and its
consent mode. Environment variables with the RETARGET_SHOP_ prefix."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ConsentMode = Literal["opt_in", "opt_out"]


class ShopSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETARGET_SHOP_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the demo shop binds.")
    port: int = Field(18086, ge=0, le=65535, description="Port of the demo shop's pages.")
    ingest_url: str = Field(
        "http://127.0.0.1:18080",
        description="Ingest's base URL as the visitor's browser reaches it: the SDKs load their "
        "settings from it and post events to it (the pages' CSP allows this origin only).",
    )
    write_key: str = Field(
        description="The workspace's write key the pages' SDKs send with (public by design). No default."
    )
    consent_mode: ConsentMode = Field(
        "opt_in",
        description="opt_in: nothing is sent and no SDK cookie is set before the visitor accepts; "
        "opt_out: tracking starts at once and the banner offers to reject.",
    )
    preferences_url: str | None = Field(
        None, description="Where the banner's preferences link points (default: the shop's /preferences)."
    )

    @field_validator("ingest_url")
    @classmethod
    def _an_http_origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL such as http://127.0.0.1:18080")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError(f"{value!r}: give ingest's base URL only, scheme://host[:port]")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("preferences_url")
    @classmethod
    def _a_link(cls, value: str | None) -> str | None:
        # the banner links there: a path on the shop or an http(s) page, never javascript: and such
        if value is None or (value.startswith("/") and not value.startswith("//")):
            return value
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.hostname:
            return value
        raise ValueError(f"{value!r} is neither a path such as /preferences nor an http(s) URL")
