"""The propensity model on the real stack: stored in PostgreSQL, trained and judged from the
events topic by the CLI, hot-loaded by a running segmenter whose campaign condition uses it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from retarget.common.kafka import ensure_topics
from retarget.common.schemas import TrackedEvent, encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, visitor_key
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.demo.traffic import visitors
from retarget.segmenter.propensity.features import FEATURES
from retarget.segmenter.propensity.model import KIND, LogisticModel
from retarget.segmenter.propensity.store import ModelStore
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR

from .conftest import marker_cart, marker_identify

pytestmark = pytest.mark.integration
N = len(FEATURES)


def constant_model(intercept: float) -> LogisticModel:
    """Scores every profile alike: 1 / (1 + e^-intercept)."""
    return LogisticModel(
        kind=KIND,
        features=list(FEATURES),
        mean=[0.0] * N,
        scale=[1.0] * N,
        coef=[0.0] * N,
        intercept=intercept,
    )


async def add_workspace(database_url: str, workspace_id: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(workspace_id, "Shop", "Shop", "news@shop.example", "1 Main St")
        )
    finally:
        await conn.close()


async def save(database_url: str, workspace_id: str, model: LogisticModel) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        until = datetime.now(UTC)
        return await ModelStore(conn).save(
            workspace_id, model, {"examples": 1}, until=until, horizon=timedelta(days=7)
        )
    finally:
        await conn.close()


async def test_versions_round_trip_through_postgresql(stack, workspace_id):
    dsn = stack["RETARGET_DATABASE_URL"]
    await add_workspace(dsn, workspace_id)
    assert [await save(dsn, workspace_id, constant_model(i)) for i in (1.0, 2.0)] == [1, 2]
    conn = await asyncpg.connect(dsn)
    try:
        store = ModelStore(conn)
        newest = await store.newest(workspace_id)
        assert newest is not None and newest.version == 2 and json.loads(newest.body)["intercept"] == 2.0
        assert (await store.newest_of_each())[workspace_id].version == 2
        first = await store.get(workspace_id, 1)
        assert (
            first is not None
            and json.loads(first.body)["intercept"] == 1.0
            and first.horizon == timedelta(days=7)
        )
        await store.record_evaluation(workspace_id, 2, {"auc": 0.7})
        assert (await store.get(workspace_id, 2)).metrics == {"examples": 1, "evaluation": {"auc": 0.7}}  # type: ignore[union-attr]
        assert await store.newest(f"{workspace_id}-none") is None
    finally:
        await conn.close()


async def produce_demo_history(stack, prefix: str, workspace_id: str, now: datetime, n: int) -> int:
    """Demo traffic with its past weeks, produced to the events topic as ingest would."""
    from aiokafka import AIOKafkaProducer

    settings = CommonSettings(
        kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"], topic_prefix=prefix, topic_partitions=2
    )
    topic = Topics(prefix).events
    await ensure_topics(settings, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    count = 0
    try:
        for person in visitors(n, seed=5, now=now, history_days=28):
            for body in person.events:
                at = datetime.fromisoformat(body["timestamp"])
                event = TrackedEvent(
                    workspace_id=workspace_id, type=body["type"], message_id=body["messageId"], timestamp=at,
                    received_at=at, anonymous_id=body["anonymousId"], event=body.get("event"),
                    name=body.get("name"), properties=body.get("properties", {}), traits=body.get("traits", {}),
                )  # fmt: skip
                await producer.send(
                    topic, encode(event), key=visitor_key(workspace_id, None, person.anonymous_id)
                )
                count += 1
        other = TrackedEvent(
            workspace_id="someone-else", type="track", message_id="x", timestamp=now, received_at=now,
            anonymous_id="a", event="Order Completed",
        )  # fmt: skip
        await producer.send(topic, encode(other), key=b"someone-else:a")  # another workspace: not read
        await producer.flush()
    finally:
        await producer.stop()
    return count


def cli(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "retarget.cli.main", "model", *args, "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


async def test_train_and_evaluate_from_the_events_topic(stack, topic_prefix, workspace_id):
    dsn = stack["RETARGET_DATABASE_URL"]
    await add_workspace(dsn, workspace_id)
    now = datetime.now(UTC).replace(microsecond=0)
    produced = await produce_demo_history(stack, topic_prefix, workspace_id, now, n=300)
    env = {**stack, "RETARGET_TOPIC_PREFIX": topic_prefix}
    until = (now - timedelta(days=7)).isoformat()
    trained = cli(env, "train", "--workspace", workspace_id, "--until", until, "--cutoffs", "10")
    assert trained["version"] == 1 and trained["events"] == produced  # the other workspace's record: not read
    assert trained["positives"] > 0 and trained["examples"] > trained["positives"]
    judged = cli(env, "evaluate", "--workspace", workspace_id)
    assert judged["cutoff"] == datetime.fromisoformat(until).isoformat() and judged["horizon_complete"]
    assert judged["examples"] > 100 and 0 < judged["positives"] < judged["examples"]
    assert judged["auc"] > 0.55, judged  # the demo's intent shows in the weeks before a purchase
    assert {"baseline_recency_auc", "log_loss", "calibration"} <= set(judged)
    conn = await asyncpg.connect(dsn)
    try:
        stored = await ModelStore(conn).newest(workspace_id)
        assert stored is not None and stored.metrics["evaluation"]["auc"] == judged["auc"]
    finally:
        await conn.close()


def discount_campaigns(folder: Path, threshold: float) -> Path:
    """The bundled abandoned_cart, which gives 10% off, only below a propensity threshold."""
    folder.mkdir()
    text = (DEFAULT_CAMPAIGNS_DIR / "abandoned_cart.yaml").read_text()
    text = text.replace(
        "  cart_not_empty: true\n", f"  cart_not_empty: true\n  propensity_below: {threshold}\n"
    )
    assert f"propensity_below: {threshold}" in text
    (folder / "abandoned_cart.yaml").write_text(text)
    return folder


def offer(trigger) -> dict:
    return {k: v for k, v in trigger.incentive.items() if k != "coupon"}


async def test_a_new_model_version_changes_who_gets_the_discount_without_a_restart(
    stack, kafka, start_worker, workspace_id, tmp_path
):
    dsn = stack["RETARGET_DATABASE_URL"]
    await add_workspace(dsn, workspace_id)
    worker = start_worker(
        "w1",
        RETARGET_CAMPAIGNS_DIR=str(discount_campaigns(tmp_path / "campaigns", 0.5)),
        RETARGET_PROPENSITY_REFRESH_S="0.5",
    )
    worker.wait_ready()
    kafka.start_reading()

    async def cart(visitor: str) -> None:
        await kafka.send(marker_identify(workspace_id, visitor), marker_cart(workspace_id, visitor))

    async def fired_for(visitor: str, timeout_s: float = 60) -> list:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            found = [t for t in kafka.triggers if t.profile_id == visitor]
            if found:
                return found
            await asyncio.sleep(0.2)
        return []

    # no model yet: the condition passes, unscored
    (unscored,) = await fired_for_after(cart, fired_for, "no-model")
    # the bundled campaign's incentive also carries its coupon since #17: the offer is what counts
    assert "propensity" not in unscored.data and offer(unscored) == {"kind": "percent_off", "value": 10}

    # version 1 says everyone would buy anyway (0.99): no discount email
    await save(dsn, workspace_id, constant_model(5.0))
    refused_before = worker.metric(
        'retarget_segmenter_triggers_cancelled_total{campaign="abandoned_cart",reason="propensity at or above threshold"}'
    )
    likely = f"likely-{uuid.uuid4().hex[:6]}"
    deadline = asyncio.get_running_loop().time() + 60
    while worker.metric("retarget_segmenter_propensity_models_loaded") < 1:
        assert asyncio.get_running_loop().time() < deadline, "version 1 never loaded"
        await asyncio.sleep(0.2)
    await cart(likely)
    while (
        worker.metric(
            'retarget_segmenter_triggers_cancelled_total{campaign="abandoned_cart",reason="propensity at or above threshold"}'
        )
        <= refused_before
    ):
        assert asyncio.get_running_loop().time() < deadline, "the likely buyer's wait was never decided"
        await asyncio.sleep(0.2)
    assert not [t for t in kafka.triggers if t.profile_id == likely]

    # version 2 says nobody would (0.007): the discount goes out again, scored by version 2
    await save(dsn, workspace_id, constant_model(-5.0))
    scored = None
    deadline = asyncio.get_running_loop().time() + 90
    while scored is None:  # each try a new visitor, until one is decided by version 2
        assert asyncio.get_running_loop().time() < deadline, "version 2 never scored a profile"
        visitor = f"unlikely-{uuid.uuid4().hex[:6]}"
        await cart(visitor)
        found = await fired_for(visitor, timeout_s=10)
        scored = next((t for t in found if t.data.get("propensity_model") == 2), None)
    assert scored.data["propensity"] == pytest.approx(0.0067, abs=1e-3)
    assert offer(scored) == {"kind": "percent_off", "value": 10}
    assert worker.process.poll() is None  # the same worker throughout


async def fired_for_after(cart, fired_for, name: str) -> list:
    visitor = f"{name}-{uuid.uuid4().hex[:6]}"
    await cart(visitor)
    found = await fired_for(visitor)
    assert found, f"{visitor}'s reminder never fired"
    return found


def test_training_for_a_workspace_that_does_not_exist_says_so(stack, topic_prefix):
    done = subprocess.run(
        [sys.executable, "-m", "retarget.cli.main", "model", "train", "--workspace", "no-such-shop"],
        env={**os.environ, **stack, "RETARGET_TOPIC_PREFIX": topic_prefix},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "no workspace 'no-such-shop'" in done.stderr, done.stderr
