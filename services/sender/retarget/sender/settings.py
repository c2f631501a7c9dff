"""The sender's settings, and the SMTP relay address parsed out of one URL.

RETARGET_SMTP_URL names the relay the way operators write it:
    smtp://127.0.0.1:12525                 plain SMTP (the local capture; development only)
    smtp+starttls://user:pass@host:587     STARTTLS required, then AUTH
    smtps://user:pass@host:465             TLS from the first byte (implicit TLS)
The URL is a SecretStr because it may carry a password; it never appears in a repr or a log.
In production (RETARGET_ENVIRONMENT, the default) the sender refuses to start with plain
smtp:// or with certificate verification turned off: mail and SMTP AUTH must not cross the
network in clear text, nor to a relay whose identity was not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, model_validator

from retarget.common.settings import CommonSettings
from retarget.sender.adaptive_rate import AdaptSettings

TlsMode = Literal["none", "starttls", "tls"]

_SCHEMES: dict[str, tuple[TlsMode, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    tls: TlsMode
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """host:port and mode, without credentials: safe for logs and /readyz."""
        return f"{self.host}:{self.port} ({self.tls})"


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"SMTP URL scheme must be one of {sorted(_SCHEMES)}, not {scheme!r}")
    if not parts.hostname:
        raise ValueError("SMTP URL has no host")
    tls, default_port = _SCHEMES[scheme]
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or default_port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class SenderSettings(CommonSettings):
    smtp_url: SecretStr = Field(
        SecretStr("smtp://127.0.0.1:12525"),
        description="SMTP relay: smtp+starttls:// or smtps://, with optional user:pass@; plain smtp:// "
        "only with RETARGET_ENVIRONMENT=development.",
    )
    smtp_connections: int = Field(
        10, ge=1, description="Reused SMTP connections; also the number of messages in flight at once."
    )
    smtp_timeout_s: float = Field(30.0, gt=0, description="Timeout of each SMTP command.")
    smtp_tls_verify: bool = Field(
        True, description="Verify the relay's certificate (TLS modes); false only in development."
    )
    smtp_tls_ca_file: str | None = Field(
        None, description="PEM file of CAs trusted for the relay's certificate, besides the system's."
    )
    smtp_helo_name: str | None = Field(None, description="EHLO name; the host's FQDN when unset.")
    sender_group: str = Field("retarget-sender", description="Kafka consumer group of the sender.")
    sender_instance_id: str | None = Field(
        None,
        description="Kafka static membership id (e.g. the pod name of a StatefulSet): a restarted sender "
        "gets its partitions back at once instead of after the session timeout.",
    )
    kafka_session_timeout_ms: int = Field(10_000, ge=6_000, description="Consumer group session timeout.")
    batch_size: int = Field(200, ge=1, description="Most outbound records handled per batch.")
    ops_port: int = Field(18083, description="Port of /healthz, /readyz and /metrics.")
    create_topics: bool = Field(True, description="Create the topics the sender uses when missing.")
    # Retry of deferred (4xx / dropped connection) messages. Postfix retries for 5 days between 5 and
    # ~67 minutes; Braze gives soft bounces 72 hours. We default to the shorter, marketing-mail window.
    retry_initial_s: float = Field(300.0, gt=0, description="Wait before the first retry.")
    retry_max_interval_s: float = Field(4000.0, gt=0, description="Longest wait between two attempts.")
    retry_max_age_s: float = Field(
        72 * 3600.0, gt=0, description="Give up (expired) this long after the first deferral."
    )
    retry_max_attempts: int = Field(15, ge=1, description="Give up (expired) after this many attempts.")
    retry_poll_s: float = Field(5.0, gt=0, description="How often the retry loop looks for due messages.")
    retry_batch: int = Field(100, ge=1, description="Most due retries leased per poll.")
    claim_lease_s: float = Field(
        600.0,
        gt=0,
        description="A send-log claim older than this is taken as abandoned by a dead process (see README).",
    )

    # Admission: frequency caps and quiet hours (defaults; a workspace's rows in sending_policies
    # and frequency_caps replace them, see README).
    frequency_caps: str = Field(
        "1/16h,3/7d",
        description="Per-recipient caps across campaigns: MAX/WINDOW, comma separated (s, m, h, d units).",
    )
    quiet_hours: str | None = Field(
        None, description="Default quiet hours in the recipient's local time, e.g. 21:00-08:00; unset = none."
    )
    policy_cache_s: float = Field(30.0, ge=0, description="How long workspace policies are cached.")
    suppression_recheck_s: float = Field(
        1.0,
        ge=0,
        description="A message that waited longer than this for rate-limit tokens has its suppression "
        "checked again just before it is claimed.",
    )
    # Token buckets (RATE per second / BURST); a rate of 0 means no limit at that level.
    rate_domain: str = Field("50/100", description="Default per recipient domain: RATE/BURST.")
    rate_domains: str = Field(
        "", description="Per-domain overrides: domain=RATE/BURST, comma separated (gmail.com=20/40)."
    )
    rate_workspace: str = Field("0/0", description="Per workspace: RATE/BURST (a workspace row overrides).")
    rate_global: str = Field("0/0", description="For this sender process: RATE/BURST.")
    # AIMD per domain (adaptive_rate.py): throttling and policy replies cut, quiet intervals add back.
    rate_adapt_factor: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A throttling (421, 4.7.x) or policy (5.7.x) reply multiplies the domain's rate by this.",
    )
    rate_adapt_floor_per_s: float = Field(
        0.1, gt=0, description="The slowest a domain's rate adapts down to (messages per second)."
    )
    rate_adapt_step: float = Field(
        0.1, gt=0, le=1, description="Share of the configured domain rate added back per quiet interval."
    )
    rate_adapt_interval_s: float = Field(
        60.0, gt=0, description="Seconds without throttling or policy replies per recovery step."
    )
    dkim_keys_dir: Path | None = Field(
        None, description="Folder of DKIM private keys named <domain>.<selector>.<rsa|ed25519>.pem."
    )
    dkim_rescan_s: float = Field(30.0, ge=0, description="Least time between two scans of the keys folder.")

    def rate_adapt(self) -> AdaptSettings:
        return AdaptSettings(
            self.rate_adapt_factor,
            self.rate_adapt_floor_per_s,
            self.rate_adapt_step,
            self.rate_adapt_interval_s,
        )

    def smtp_target(self) -> SmtpTarget:
        return parse_smtp_url(self.smtp_url.get_secret_value())

    @model_validator(mode="after")
    def _tls_outside_development(self) -> Self:
        if self.environment != "production":
            return self
        if self.smtp_target().tls == "none":
            raise ValueError(
                "RETARGET_SMTP_URL is plain smtp://, refused in production: use smtp+starttls:// "
                "(STARTTLS required) or smtps://, or set RETARGET_ENVIRONMENT=development"
            )
        if not self.smtp_tls_verify:
            raise ValueError(
                "RETARGET_SMTP_TLS_VERIFY=false is refused in production: the relay's certificate "
                "must be verified (RETARGET_SMTP_TLS_CA_FILE adds a private CA)"
            )
        return self
