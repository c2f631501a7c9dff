"""Segmenter settings (env prefix RETARGET_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from retarget.common.settings import CommonSettings
from retarget.segmenter.attribution import Windows
from retarget.segmenter.campaign_schema import parse_duration
from retarget.segmenter.send_windows import parse_quiet_hours

# the sample campaigns shipped with the product, beside the package
DEFAULT_CAMPAIGNS_DIR = Path(__file__).resolve().parents[2] / "campaigns"


class SegmenterSettings(CommonSettings):
    store: str = Field(
        "rocksdb://", description="Faust table store: rocksdb:// in production, memory:// in tests."
    )
    data_dir: str = Field(".devstack/segmenter", description="Folder for the local RocksDB state.")
    web_port: int = Field(18081, description="Port of /healthz, /readyz and /metrics.")
    campaigns_dir: Path = Field(
        DEFAULT_CAMPAIGNS_DIR, description="Folder of campaign YAML files (*.yaml), loaded at start."
    )
    wait_scale: float = Field(
        1.0, gt=0, description="Multiplies every campaign's wait (0.0001 turns 4 h into 1.4 s for demos)."
    )
    campaign_waits: dict[str, str] = Field(
        default_factory=dict,
        description='Per-campaign wait overrides, JSON: {"abandoned_cart": "2s"} (applied after the scale).',
    )
    cart_wait_s: float | None = Field(
        None, gt=0, description="Shorthand for the abandoned_cart wait override, in seconds."
    )
    timer_interval_s: float = Field(
        0.1, gt=0, description="How often the due-trigger timer looks at the head of its schedule."
    )
    dedupe_window: int = Field(
        64, ge=0, description="Recent messageIds kept per profile to ignore duplicates (0: off)."
    )
    standby_replicas: int = Field(0, ge=0, description="Faust standby replicas of each table partition.")
    session_timeout_s: float = Field(
        10.0, gt=0, description="Kafka group session timeout (short: fast takeover; broker minimum 6)."
    )
    group_instance_id: str | None = Field(
        None,
        description="Kafka static membership id (one per worker, stable across restarts): a restarted "
        "worker takes its partitions back at once instead of after the session timeout.",
    )
    producer_linger_s: float = Field(
        0.005, ge=0, description="Producer batching delay (changelog, triggers, internal records)."
    )
    batch_size: int = Field(
        1000, ge=1, description="Records handled per batch: each touched key is written once per batch."
    )
    batch_within_s: float = Field(
        0.05, gt=0, description="Longest a record waits for its batch to fill before the batch is handled."
    )
    rocksdb_write_buffer_mb: int = Field(
        8,
        ge=1,
        description="RocksDB memtable size per table partition (2 of them at most); faust's default, "
        "64 MiB x 3, kept most of a worker's state in memory.",
    )
    rocksdb_block_cache_mb: int = Field(
        16, ge=1, description="RocksDB read cache per table partition (faust's default: 2 GiB each)."
    )
    max_forward_hops: int = Field(
        4, ge=1, description="Identity redirects an event may follow before it is dead-lettered."
    )
    attribution_open_window: str = Field(
        "5d", description="A purchase this long after a human open of a campaign's email is attributed to it."
    )
    attribution_click_window: str = Field(
        "5d",
        description="A purchase this long after a human click in a campaign's email is attributed to it.",
    )
    consent_refresh_s: float = Field(
        30.0, gt=0, description="How often each workspace's consent mode is reloaded from PostgreSQL."
    )
    consent_db_timeout_s: float = Field(
        3.0,
        gt=0,
        description="Time limit of connecting to PostgreSQL for the consent modes (and the propensity models).",
    )
    propensity_refresh_s: float = Field(
        30.0,
        gt=0,
        description="How often each workspace's newest propensity model is reloaded from PostgreSQL.",
    )
    quiet_hours: str | None = Field(
        None,
        description="Default quiet hours (the sender's setting of the same name) that send_time: optimal "
        "avoids, e.g. 21:00-08:00; a workspace's sending policy overrides them.",
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        parse_quiet_hours(value)  # raises with the accepted form
        return value

    @field_validator("attribution_open_window", "attribution_click_window")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        parse_duration(value)  # raises with the accepted forms (90s, 30m, 4h, 7d, 2w)
        return value

    def attribution_windows(self) -> Windows:
        return Windows(
            open=parse_duration(self.attribution_open_window),
            click=parse_duration(self.attribution_click_window),
        )
