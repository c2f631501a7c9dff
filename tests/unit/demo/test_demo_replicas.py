"""`retarget demo --replicas`: parsing the counts and planning each replica's name and ports."""

from __future__ import annotations

import argparse

import pytest

from retarget.demo.replicas import is_replica_of, parse_replicas, replica_plans
from retarget.demo.services import PLAN


def plan_of(name: str):
    return next(p for p in PLAN if p.name == name)


def test_a_number_means_that_many_of_each_service():
    assert parse_replicas("2") == {"ingest": 2, "segmenter": 2, "composer": 2, "sender": 2}


def test_per_service_counts_leave_the_others_at_one():
    assert parse_replicas("sender=2, segmenter=3") == {
        "ingest": 1,
        "segmenter": 3,
        "composer": 1,
        "sender": 2,
    }


@pytest.mark.parametrize("spec", ["mailer=2", "sender", "sender=0", "sender=x", "10", "sender=2;composer=2"])
def test_bad_counts_name_the_problem(spec: str):
    with pytest.raises(argparse.ArgumentTypeError, match="replicas"):
        parse_replicas(spec)


def test_a_service_named_twice_is_refused_not_resolved_by_the_last():
    with pytest.raises(argparse.ArgumentTypeError, match="sender is given twice"):
        parse_replicas("sender=2,sender=3")


def test_replicas_get_their_own_names_and_ports():
    plans = replica_plans(plan_of("sender"), 3)
    assert [p.name for p in plans] == ["sender", "sender-2", "sender-3"]
    assert [p.port for p in plans] == [18083, 18183, 18283]
    assert {p.module or p.name for p in plans} == {"sender"}  # the same program


def test_an_ingest_replica_moves_its_ops_port_too():
    first, second = replica_plans(plan_of("ingest"), 2)
    assert (second.port, second.metrics_port) == (first.port + 100, first.metrics_port + 100)
    assert second.metrics_port_var == "RETARGET_INGEST_OPS_PORT"


def test_no_replica_port_is_another_process_port():
    ports = [p.port for p in PLAN] + [p.metrics_port for p in PLAN if p.metrics_port]
    for service in ("ingest", "segmenter", "composer", "sender"):
        for plan in replica_plans(plan_of(service), 9)[1:]:
            ports += [plan.port] + ([plan.metrics_port] if plan.metrics_port else [])
    assert len(ports) == len(set(ports))


def test_replica_names_are_told_apart_from_other_services():
    assert is_replica_of("sender", "sender")
    assert is_replica_of("sender-2", "sender")
    assert not is_replica_of("ingest-mailbox", "ingest")
    assert not is_replica_of("sender-2", "segmenter")
