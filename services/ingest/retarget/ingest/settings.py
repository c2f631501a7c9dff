"""Settings of the ingest service (environment variables with the RETARGET_ prefix)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from retarget.common.settings import CommonSettings


class IngestSettings(CommonSettings):
    port: int = Field(
        default=18080, ge=0, le=65535, description="Public HTTP port: the Segment API and tracking links."
    )
    ingest_ops_port: int = Field(
        default=18085,
        ge=1,
        le=65535,
        description="Operations port: /metrics, /readyz, /healthz and the OpenAPI schema; keep it private.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest request line and headers of one request; more is a 431 and a closed connection.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes serving the port; rate-limit buckets and the key cache are per process.",
    )

    # Segment's documented limits; Rudder's SDK allows more, so they are configurable.
    max_event_bytes: int = Field(default=32 * 1024, ge=1, description="Largest single event, in JSON bytes.")
    max_batch_bytes: int = Field(default=500 * 1024, ge=1, description="Largest batch request, decompressed.")
    max_batch_events: int = Field(default=2500, ge=1, description="Most events in one batch request.")

    # Per-write-key token bucket, counted in events (a batch of 100 costs 100).
    rate_limit_events_per_s: float = Field(
        default=5000.0, gt=0, description="Sustained events/s per write key."
    )
    rate_limit_burst: int = Field(
        default=20_000, ge=1, description="Bucket size: events a key may send at once."
    )

    # Auth is cached so a request costs no query; a revocation takes effect within the TTL.
    key_cache_ttl_s: float = Field(default=30.0, ge=0, description="How long a known write key is trusted.")
    key_cache_negative_ttl_s: float = Field(
        default=5.0, ge=0, description="How long an unknown key stays unknown."
    )
    key_cache_max_entries: int = Field(
        default=10_000, ge=1, description="Bound on cached keys, and separately on cached misses."
    )
    # Made-up keys (a spray) must not load PostgreSQL: a key not known to be valid costs a
    # token of this bucket; when it is empty such requests get 429 and no query is made.
    key_cold_lookups_per_s: float = Field(
        default=200.0, gt=0, description="Lookups per second of keys not seen recently (per process)."
    )
    key_cold_lookup_burst: int = Field(
        default=1000, ge=1, description="Lookups of keys not seen recently allowed at once."
    )
    # Secret keys (privacy endpoints): exports scan the segmenter's state, so they are few.
    rate_limit_secret_key_requests_per_s: float = Field(
        default=5.0, gt=0, description="Sustained requests/s per secret key."
    )
    rate_limit_secret_key_burst: int = Field(
        default=20, ge=1, description="Requests a secret key may make at once."
    )

    # Backpressure: never accept an event Kafka has not acknowledged, never hang a client.
    publish_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait for Kafka's ack before a 503."
    )
    max_in_flight_events: int = Field(default=50_000, ge=1, description="Events awaiting an ack before 503s.")
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After sent with a 503.")
    kafka_linger_ms: int = Field(
        default=5,
        ge=0,
        description="How long the producer waits to fill a batch; every request waits for its ack.",
    )
    kafka_max_batch_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Producer batch size per partition. aiokafka keeps one batch in flight per "
        "partition and makes a send wait when its batch is full, so small batches stall /v1/batch.",
    )
    kafka_connect_wait_s: float = Field(
        default=10.0, ge=0, description="Startup wait for Kafka (then retried)."
    )
    create_topics: bool = Field(default=True, description="Create the events topic on startup when missing.")
    readiness_timeout_s: float = Field(default=2.0, gt=0, description="Time limit of each /readyz check.")

    # Tracking links (/t/*). The secret is the composer's RETARGET_LINK_SECRET; without it the
    # link routes answer 404 (no default: a known secret would let anyone forge unsubscribes).
    link_secret: SecretStr | None = Field(
        default=None, description="HMAC key of open/click/unsubscribe tokens (RETARGET_LINK_SECRET)."
    )
    link_publish_timeout_s: float = Field(
        default=1.0, gt=0, description="Longest wait for Kafka before a click redirects anyway."
    )
    link_domains_cache_s: float = Field(
        default=30.0, ge=0, description="How long a workspace's link domains are cached for /t/c."
    )
    link_domains_cache_max: int = Field(
        default=10_000, ge=1, description="Most workspaces whose link domains are cached."
    )

    # Browser tracking (cors.py): each workspace's allowed origins, and every workspace's for preflights
    origins_cache_s: float = Field(
        default=30.0,
        ge=0,
        description="How long allowed origins are cached (a change takes effect within it).",
    )
    origins_cache_max: int = Field(
        default=10_000, ge=1, description="Most workspaces whose allowed origins are cached."
    )
    known_origins_max: int = Field(
        default=100_000, ge=1, description="Most origins (of all workspaces) a CORS preflight can allow."
    )
    cors_max_age_s: int = Field(
        default=600, ge=0, le=86_400, description="How long browsers may cache a preflight answer."
    )
    public_url: str | None = Field(
        default=None,
        description="Ingest's public base URL (the one tracking links use), for the SDK settings it "
        "serves (unset: the scheme and Host of the request).",
    )

    # The mailto: unsubscribe (mailbox.py), a process of its own: python -m retarget.ingest.mailbox_server
    mailbox_port: int = Field(
        default=18025, ge=0, le=65535, description="SMTP port of the unsubscribe mailbox."
    )
    mailbox_ops_port: int = Field(
        default=18084, ge=0, le=65535, description="Port of the mailbox's /healthz, /readyz and /metrics."
    )
    mailbox_hostname: str | None = Field(
        default=None, description="Name the mailbox greets with (default: this host's FQDN)."
    )
    mailbox_max_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest message the mailbox accepts (replies quote the email).",
    )
    mailbox_max_sessions: int = Field(
        default=200,
        ge=1,
        description="SMTP sessions open at once; more connections get a 421 (each may hold MAILBOX_MAX_BYTES).",
    )
    mailbox_read_workers: int = Field(
        default=2, ge=1, le=32, description="Threads reading mail; more mails at once are answered 451."
    )
    mailbox_read_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest the mailbox waits for a mail to be read before a 451."
    )
    feedback_loop_address: str | None = Field(
        default=None,
        description="Address registered with the mailbox providers' feedback loops; complaint "
        "reports (ARF) count only when sent there (default: fbl@MAILBOX_HOSTNAME).",
    )
