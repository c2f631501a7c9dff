"""Replication settings: what the topics get, what a local cluster's nodes are told, and what
the stack hands to the services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from retarget.common.settings import CommonSettings
from retarget.devstack.env import stack_env
from retarget.devstack.kafka_config import KafkaNode, cluster_nodes, node_properties, replication_of
from retarget.devstack.paths import Layout


def test_min_insync_above_the_replication_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="RETARGET_TOPIC_MIN_INSYNC=2 exceeds"):
        CommonSettings(topic_replication=1, topic_min_insync=2)
    assert CommonSettings(topic_replication=3, topic_min_insync=2).topic_min_insync == 2


def test_a_three_node_cluster_is_a_static_quorum_with_replicated_internal_topics(tmp_path: Path) -> None:
    nodes = cluster_nodes(tmp_path, [(9100, 9101), (9102, 9103), (9104, 9105)])
    props = node_properties(nodes[1])
    assert props["node.id"] == "2"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9102,CONTROLLER://127.0.0.1:9103"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9101,2@127.0.0.1:9103,3@127.0.0.1:9105"
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["log.dirs"] == str(tmp_path / "node-2" / "kafka" / "data")
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert props[key] == "3", key
    assert props["transaction.state.log.min.isr"] == props["min.insync.replicas"] == "2"
    assert props["default.replication.factor"] == "3"


def test_a_lone_node_keeps_one_replica_of_everything(tmp_path: Path) -> None:
    props = node_properties(KafkaNode(Layout(tmp_path)))
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in props
    assert props["offsets.topic.replication.factor"] == props["min.insync.replicas"] == "1"


@pytest.mark.parametrize(("size", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))])
def test_replicas_and_min_insync_follow_the_cluster_size(size: int, expected: tuple[int, int]) -> None:
    assert replication_of(size) == expected


def _recorded_brokers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, brokers: int) -> None:
    monkeypatch.setenv("RETARGET_DEVSTACK_DIR", str(tmp_path))
    for name in ("RETARGET_KAFKA_BOOTSTRAP", "RETARGET_TOPIC_REPLICATION", "RETARGET_TOPIC_MIN_INSYNC"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "state.json").write_text(json.dumps({"kafka": {"brokers": brokers}}))


def test_services_of_a_three_broker_stack_get_every_node_and_the_replication(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _recorded_brokers(monkeypatch, tmp_path, 3)
    env = stack_env()
    assert env["RETARGET_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert (env["RETARGET_TOPIC_REPLICATION"], env["RETARGET_TOPIC_MIN_INSYNC"]) == ("3", "2")
    # a test fixture exports stack_env() to os.environ: the 3-node list is still the local stack
    monkeypatch.setenv("RETARGET_KAFKA_BOOTSTRAP", env["RETARGET_KAFKA_BOOTSTRAP"])
    assert stack_env()["RETARGET_TOPIC_REPLICATION"] == "3"


def test_services_of_the_default_stack_get_no_replication_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _recorded_brokers(monkeypatch, tmp_path, 1)
    env = stack_env()
    assert env["RETARGET_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert "RETARGET_TOPIC_REPLICATION" not in env
