"""The worker's local RocksDB after an unclean stop: rebuilt from the changelog, not trusted.

RocksDB writes land on disk at once; their changelog records leave with the producer's
next batch. After kill -9 the local store may hold writes the changelog never got — the
consumer then replays those events, finds them already applied (deduplicated) and the
changelog stays behind, so the next owner of the partition would see older state. A
marker file says a worker is running; if it is still there at start, the previous run
did not stop cleanly, and the local tables are deleted so faust recovers them from the
changelog (slower to start, never inconsistent).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)
MARKER = "segmenter.running"


def prepare(data_dir: Path, table_dir: Path, *, wipe_after_crash: bool) -> bool:
    """Call before the worker starts; returns True when the local tables were wiped."""
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / MARKER
    wiped = False
    if marker.exists() and wipe_after_crash and table_dir.exists():
        shutil.rmtree(table_dir)
        wiped = True
        log.warning(
            "the previous run did not stop cleanly: local tables deleted, recovering from the changelog",
            extra={"table_dir": str(table_dir)},
        )
    marker.write_text("a segmenter worker is running, or was killed\n")
    return wiped


def stopped_cleanly(data_dir: Path) -> None:
    (data_dir / MARKER).unlink(missing_ok=True)
