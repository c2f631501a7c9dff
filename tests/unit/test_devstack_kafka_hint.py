"""The devstack's hint when the local broker is slow to start: count its partitions."""

from __future__ import annotations

from pathlib import Path

from retarget.devstack.kafka import _partition_dirs


def test_partition_folders_are_counted_and_other_entries_are_not(tmp_path: Path):
    for name in ("t1a2b.events.v1-0", "t1a2b.events.v1-1", "__cluster_metadata-0"):
        (tmp_path / name).mkdir()
    (tmp_path / "meta.properties").write_text("")
    (tmp_path / "bootstrap.checkpoint").mkdir()  # a folder, but no partition's
    assert _partition_dirs(tmp_path) == 3
    assert _partition_dirs(tmp_path / "missing") == 0
