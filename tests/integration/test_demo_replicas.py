"""`retarget demo --replicas`: replicas start as recorded services on their own ports, `retarget
devstack status --json` lists every one, and a later run with fewer stops the extra ones.
Real composer processes on the real stack, recorded in a stack state of the test's own (so the
shared stack's demo and its fixed ports are left alone)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from retarget.demo import services
from retarget.demo.services import ServicePlan
from retarget.devstack.child import free_port
from retarget.devstack.services import stop_all_services


def status_json(env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "retarget.cli.main", "devstack", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.timeout(600)  # two composers start on a shared, loaded machine
def test_replicas_are_recorded_listed_and_trimmed(
    stack: dict[str, str], topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RETARGET_DEVSTACK_DIR", str(tmp_path / "devstack"))
    monkeypatch.setattr(services, "PLAN", [ServicePlan("composer", free_port(), "RETARGET_OPS_PORT")])
    env = {
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": "2",
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
    }
    try:
        records = services.start_all(env, {"composer": 2})
        assert [r["name"] for r in records] == ["composer", "composer-2"]
        listed = status_json({**os.environ})["services"]
        assert {"composer", "composer-2"} <= set(listed)
        assert listed["composer"]["running"] and listed["composer-2"]["running"]
        assert listed["composer"]["http"] != listed["composer-2"]["http"]

        services.start_all(env, {"composer": 1})  # fewer now: the extra replica stops
        listed = status_json({**os.environ})["services"]
        assert "composer-2" not in listed
        assert listed["composer"]["running"]
    finally:
        stop_all_services()
