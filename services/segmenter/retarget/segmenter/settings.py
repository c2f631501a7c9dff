"""Segmenter settings (env prefix RETARGET_)."""

from __future__ import annotations

from pydantic import Field

from retarget.common.settings import CommonSettings


class SegmenterSettings(CommonSettings):
    store: str = Field(
        "rocksdb://", description="Faust table store: rocksdb:// in production, memory:// in tests."
    )
    data_dir: str = Field(".devstack/segmenter", description="Folder for the local RocksDB state.")
    web_port: int = Field(18081, description="Port of /healthz, /readyz and /metrics.")
    cart_wait_s: float = Field(4 * 3600, gt=0, description="Abandoned cart: wait after the last cart add.")
    timer_interval_s: float = Field(
        0.5, gt=0, description="How often the due-trigger timer looks for due entries."
    )
    dedupe_window: int = Field(
        64, ge=0, description="Recent messageIds kept per profile to ignore duplicates."
    )
    standby_replicas: int = Field(0, ge=0, description="Faust standby replicas of each table partition.")
    session_timeout_s: float = Field(
        10.0, gt=0, description="Kafka group session timeout (short: fast takeover)."
    )
