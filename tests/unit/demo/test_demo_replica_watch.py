"""What `retarget demo --replicas` prints about who owns which partitions."""

from __future__ import annotations

import pytest
from rich.console import Console

from retarget.demo import replica_watch


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> Console:
    console = Console(record=True, width=300)
    monkeypatch.setattr(replica_watch, "console", console)
    services = {
        name: {"http": f"http://127.0.0.1:{port}", "pid": port}
        for name, port in [
            ("sender", 18083),
            ("sender-2", 18183),
            ("ingest", 18080),
            ("ingest-mailbox", 18084),
        ]
    }
    monkeypatch.setattr(replica_watch, "load_state", lambda: {"services": services})
    owned = {
        "http://127.0.0.1:18083/readyz": {"p.outbound.v1": [0, 2]},
        "http://127.0.0.1:18183/readyz": None,  # not answering
    }
    monkeypatch.setattr(replica_watch, "owned_partitions", lambda url: owned[url])
    return console


def test_each_consumer_replica_is_listed_with_its_partitions(printed: Console):
    replica_watch.show_partitions_howto({"sender": 2})
    text = printed.export_text()
    assert "sender       pid 18083" in text and "p.outbound.v1 [0, 2]" in text
    assert "sender-2" in text and "not answering" in text
    assert "ingest" not in text.split("Watch them move")[0]  # no partitions to show for ingest
    assert "kill <its pid>" in text


def test_without_replicas_nothing_is_printed(printed: Console):
    replica_watch.show_partitions_howto({"sender": 1, "composer": 1})
    replica_watch.show_partitions_howto(None)
    assert printed.export_text() == ""


def test_changelogs_are_left_out_of_the_summary():
    owned = {"p-segmenter-profiles-changelog": [0], "p.events.v1": [0, 1]}
    assert replica_watch._summary(owned) == "p.events.v1 [0, 1]"
    assert replica_watch._summary({}) == "none yet"
