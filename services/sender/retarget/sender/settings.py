"""The sender's settings, and the SMTP relay address parsed out of one URL.

RETARGET_SMTP_URL names the relay the way operators write it:
    smtp://127.0.0.1:12525                 plain SMTP (the local capture)
    smtp+starttls://user:pass@host:587     STARTTLS required, then AUTH
    smtps://user:pass@host:465             TLS from the first byte (implicit TLS)
The URL is a SecretStr because it may carry a password; it never appears in a repr or a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr

from retarget.common.settings import CommonSettings

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
        description="SMTP relay: smtp://, smtp+starttls:// or smtps://, with optional user:pass@.",
    )
    smtp_connections: int = Field(
        10, ge=1, description="Reused SMTP connections; also the number of messages in flight at once."
    )
    smtp_timeout_s: float = Field(30.0, gt=0, description="Timeout of each SMTP command.")
    smtp_tls_verify: bool = Field(True, description="Verify the relay's certificate (TLS modes).")
    smtp_helo_name: str | None = Field(None, description="EHLO name; the host's FQDN when unset.")
    sender_group: str = Field("retarget-sender", description="Kafka consumer group of the sender.")
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

    def smtp_target(self) -> SmtpTarget:
        return parse_smtp_url(self.smtp_url.get_secret_value())
