"""Settings: one pydantic-settings class per service, all on this shared base.

Every field reads from an environment variable with the RETARGET_ prefix
(RETARGET_KAFKA_BOOTSTRAP, RETARGET_DATABASE_URL, …). Secrets have no defaults, so a
service that needs one refuses to start without it instead of running with a known value.
"""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    # hide_input_in_errors: a refused setting's error must not print the others (secrets, an SMTP
    # URL's password) into a start-up log
    model_config = SettingsConfigDict(env_prefix="RETARGET_", extra="ignore", hide_input_in_errors=True)

    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers, comma separated.")
    topic_prefix: str = Field(
        "retarget",
        description="Prefix of every topic name (tests use a random one). Also names the deployment "
        "in the sender's send log: deployments sharing a database need different prefixes.",
    )
    topic_partitions: int = Field(12, ge=1, description="Partitions for topics this system creates.")
    topic_replication: int = Field(
        1, ge=1, description="Replication factor for topics this system creates (production: 3)."
    )
    topic_min_insync: int = Field(
        1,
        ge=1,
        description="min.insync.replicas of topics this system creates (production: 2): an acks=all "
        "send succeeds only once this many replicas have it. At most topic_replication.",
    )
    database_url: str = Field(
        "postgresql://retarget@127.0.0.1:15432/retarget", description="PostgreSQL DSN (asyncpg)."
    )
    db_pool_min: int = Field(1, ge=0, description="Minimum PostgreSQL pool size.")
    db_pool_max: int = Field(10, ge=1, description="Maximum PostgreSQL pool size.")
    log_level: str = Field("INFO", description="Log level of the JSON logs.")
    http_host: str = Field("127.0.0.1", description="Address the service's HTTP (or ops) server binds.")
    shutdown_grace_s: float = Field(20.0, gt=0, description="Time to finish in-flight work on SIGTERM.")
    environment: Literal["production", "development"] = Field(
        "production",
        description="production (the default) refuses plaintext SMTP, unverified relay certificates "
        "and http public URLs at start; development (the devstack, demo, tests, compose) allows them.",
    )

    @model_validator(mode="after")
    def _min_insync_fits_the_replicas(self) -> Self:
        # more than the replicas there are, and every acks=all send fails (NotEnoughReplicas)
        if self.topic_min_insync > self.topic_replication:
            raise ValueError(
                f"RETARGET_TOPIC_MIN_INSYNC={self.topic_min_insync} exceeds "
                f"RETARGET_TOPIC_REPLICATION={self.topic_replication}: no send could ever succeed"
            )
        return self


def refuse_http_public_url(environment: str, public_url: str | None) -> None:
    """Outside development the public URL must be https: it is in every List-Unsubscribe header,
    and mailbox providers (and people) must not send unsubscribes and clicks in clear text."""
    if environment == "production" and public_url and urlsplit(public_url).scheme.lower() != "https":
        raise ValueError(
            f"RETARGET_PUBLIC_URL must be an https:// URL in production (it is {public_url!r}): "
            "List-Unsubscribe and tracking links go to it; set RETARGET_ENVIRONMENT=development "
            "to allow http on a development machine"
        )


class LinkSettings(BaseSettings):
    """Signing key and public address for tracking links (composer writes them, ingest serves them)."""

    model_config = SettingsConfigDict(env_prefix="RETARGET_", extra="ignore", hide_input_in_errors=True)

    link_secret: SecretStr = Field(description="HMAC key for open/click/unsubscribe tokens. No default.")
    public_url: str = Field(
        "http://127.0.0.1:18080", description="Public base URL of ingest, used in tracking links."
    )
