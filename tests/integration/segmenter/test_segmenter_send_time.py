"""send_time: optimal on the real broker and PostgreSQL, with a worker as a process.

Decisions go by event time, so days of a person's history are events stamped in the past and
produced before the worker starts (a backlog: the read watermark keeps the timer behind what
was read, watermark.py): their waits end in the past and the held triggers come due at once,
carrying the chosen time as `due_at`. The workspace's time zone comes from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import yaml

from retarget.common.identity import trigger_id
from retarget.common.kafka import ensure_topics
from retarget.common.schemas import TrackedEvent
from retarget.common.settings import CommonSettings
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR

from .conftest import Kafka

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("America/New_York")
WAIT = timedelta(seconds=2)  # both campaigns' wait (CAMPAIGN_ENV)


def stamped(ws: str, anon: str, at: datetime, kind: str = "track", **fields) -> TrackedEvent:
    return TrackedEvent(
        workspace_id=ws, type=kind, message_id=uuid.uuid4().hex, timestamp=at, received_at=at,
        anonymous_id=anon, **fields,
    )  # fmt: skip


def cart_add(ws: str, anon: str, at: datetime) -> TrackedEvent:
    props = {"product_id": "boot-1", "name": "Trail Boot", "price": 89.5, "currency": "EUR"}
    return stamped(ws, anon, at, event="Product Added", properties=props)


def opened(ws: str, anon: str, at: datetime, **extra) -> TrackedEvent:
    props = {"campaign": CAMPAIGN, "message_id": uuid.uuid4().hex, **extra}
    return stamped(ws, anon, at, event="Email Opened", properties=props, origin="link")


def next_local_hour(after: datetime, hour: int) -> datetime:
    """The first start of local `hour` at or after `after` (the rule the test expects)."""
    local = after.astimezone(ZONE)
    for day in range(3):
        at = datetime.combine(local.date() + timedelta(days=day), time(hour), tzinfo=ZONE).astimezone(UTC)
        if at >= after:
            return at
    raise AssertionError("unreachable")


CAMPAIGN = "best_hour_cart"
CAMPAIGN_ENV = {"RETARGET_CAMPAIGN_WAITS": '{"abandoned_cart": "2s", "best_hour_cart": "2s"}'}


def optimal_campaigns(folder: Path) -> str:
    """The bundled abandoned-cart campaign as `best_hour_cart`, sent at the person's hour within
    a day; the bundled one stays, sent at once, for the markers' carts only (conftest.py)."""
    folder.mkdir()
    bundled = yaml.safe_load((DEFAULT_CAMPAIGNS_DIR / "abandoned_cart.yaml").read_text())
    markers = {**bundled, "entry": {"event": "Product Added", "where": {"product_id": "marker"}}}
    optimal = {
        **bundled, "name": CAMPAIGN, "template": "abandoned_cart", "send_time": "optimal", "max_delay": "24h",
        "entry": {"event": "Product Added", "where": {"product_id": "boot-1"}},
    }  # fmt: skip
    (folder / "abandoned_cart.yaml").write_text(yaml.safe_dump(markers))
    (folder / f"{CAMPAIGN}.yaml").write_text(yaml.safe_dump(optimal))
    return str(folder)


async def new_york_workspace(database_url: str, workspace_id: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(
                id=workspace_id, name="Shop", from_name="Shop", from_email="news@shop.example",
                postal_address="1 Main St", timezone="America/New_York",
            )
        )  # fmt: skip
    finally:
        await conn.close()


class Person:
    """A visitor emailed once long ago (at the prior's hour: no history yet), who then opened
    that email at `open_hour` local on three days, and adds to the cart again at `cart_at`."""

    def __init__(self, ws: str, name: str, day0: datetime, open_hour: int | None) -> None:
        self.ws, self.anon = ws, f"{name}-{uuid.uuid4().hex[:6]}"
        identify = stamped(
            ws,
            self.anon,
            day0 - timedelta(seconds=1),
            "identify",
            traits={"email": f"{self.anon}@example.com"},
        )
        first = cart_add(ws, self.anon, day0)
        self.first_trigger = trigger_id(ws, CAMPAIGN, self.anon, first.message_id)
        self.first_due = next_local_hour(day0 + WAIT, 9)  # the population prior's best hour
        self.events = [identify, first]
        for n in (1, 2, 3):
            if open_hour is not None:
                local = datetime.combine(
                    (day0 + timedelta(days=n)).astimezone(ZONE).date(), time(open_hour, 10), tzinfo=ZONE
                )
                self.events.append(opened(ws, self.anon, local.astimezone(UTC)))
            # a privacy proxy fetching the pixel at 03:00 local: never learned from
            proxy = datetime.combine(
                (day0 + timedelta(days=n)).astimezone(ZONE).date(), time(3, 5), tzinfo=ZONE
            )
            self.events.append(opened(ws, self.anon, proxy.astimezone(UTC), machine_open=True))

    def cart_again(self, at: datetime) -> str:
        add = cart_add(self.ws, self.anon, at)
        self.events.append(add)
        return trigger_id(self.ws, CAMPAIGN, self.anon, add.message_id)


async def test_triggers_wait_for_the_learned_hour_or_the_priors_and_a_purchase_meanwhile_cancels(
    start_worker, kafka: Kafka, stack, workspace_id: str, tmp_path: Path
):
    await new_york_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    await ensure_topics(
        CommonSettings(kafka_bootstrap=kafka.bootstrap, topic_partitions=2), [kafka.topics.events]
    )
    day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)
    again = day0 + timedelta(days=4, hours=12)  # 07:00 or 08:00 in New York

    learned = Person(workspace_id, "learned", day0, open_hour=16)
    learned_second = learned.cart_again(again)
    buyer = Person(workspace_id, "buyer", day0, open_hour=16)
    buyer_second = buyer.cart_again(again)
    order = {"order_id": uuid.uuid4().hex[:8], "total": 89.5, "currency": "EUR"}
    # after the wait (2 s) and before 16:00 New York: the held reminder must not go out
    buyer.events.append(
        stamped(
            workspace_id, buyer.anon, again + timedelta(hours=3), event="Order Completed", properties=order
        )
    )
    for person in (learned, buyer):
        await kafka.send(*person.events)

    worker = start_worker(
        "segmenter", RETARGET_CAMPAIGNS_DIR=optimal_campaigns(tmp_path / "campaigns"), **CAMPAIGN_ENV
    )
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    expected = {learned.first_trigger, buyer.first_trigger, learned_second}
    assert not await kafka.wait_for_ids(expected, timeout_s=120), worker.tail()
    markers = await kafka.after_markers(workspace_id)  # a wrong reminder for the buyer would come before
    due = {t.trigger_id: t.due_at for t in kafka.triggers}
    assert due[learned.first_trigger] == learned.first_due  # no history: the prior's 09:00 local
    assert due[buyer.first_trigger] == buyer.first_due
    assert due[learned_second] == next_local_hour(again + WAIT, 16)  # the learned hour, not 03:00
    assert buyer_second not in due
    assert set(kafka.ids()) == expected | markers, worker.tail()
    assert worker.stop() == 0


async def test_a_restart_keeps_the_chosen_send_time(
    start_worker, kafka: Kafka, stack, workspace_id: str, tmp_path: Path
):
    await new_york_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    await ensure_topics(
        CommonSettings(kafka_bootstrap=kafka.bootstrap, topic_partitions=2), [kafka.topics.events]
    )
    now = datetime.now(UTC)
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)
    hour = (now.astimezone(ZONE).hour + 6) % 24  # hours away: held, not sent, while the test runs
    person = Person(workspace_id, "held", day0, open_hour=hour)
    second = person.cart_again(now - timedelta(seconds=30))  # the wait is over already
    await kafka.send(*person.events)
    campaigns = optimal_campaigns(tmp_path / "campaigns")

    worker = start_worker("first", RETARGET_CAMPAIGNS_DIR=campaigns, **CAMPAIGN_ENV)
    await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()
    assert not await kafka.wait_for_ids({person.first_trigger}, timeout_s=120), worker.tail()
    expected = next_local_hour(now - timedelta(seconds=30) + WAIT, hour)
    held = await pending_until(worker.port, workspace_id, person.anon, expected)
    assert held["send_time_chosen"] is True
    assert worker.stop() == 0

    restarted = start_worker("second", RETARGET_CAMPAIGNS_DIR=campaigns, **CAMPAIGN_ENV)
    await asyncio.to_thread(restarted.wait_ready)
    markers = await kafka.after_markers(workspace_id)  # the restarted worker is live
    await pending_until(restarted.port, workspace_id, person.anon, expected)
    assert second not in kafka.ids() and set(kafka.ids()) == {person.first_trigger} | markers
    assert restarted.stop() == 0


async def pending_until(port: int, ws: str, anon: str, expected: datetime, timeout_s: float = 60) -> dict:
    """The profile's pending best_hour_cart wait once it is held until `expected` (polled)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    seen = None
    async with httpx.AsyncClient(timeout=5) as client:
        while asyncio.get_running_loop().time() < deadline:
            response = await client.get(f"http://127.0.0.1:{port}/profiles/{ws}/{anon}")
            if response.status_code == 200:
                seen = response.json().get("pending", {}).get(CAMPAIGN)
                if seen and datetime.fromisoformat(seen["due_at"]) == expected:
                    return dict(seen)
            await asyncio.sleep(0.3)
    raise AssertionError(f"not held until {expected.isoformat()}: {seen}")


async def test_send_windows_read_postgresql(stack, workspace_id: str):
    from retarget.segmenter.send_time import SendWindow
    from retarget.segmenter.send_windows import PgSendWindows, SendWindows

    url = stack["RETARGET_DATABASE_URL"]
    await new_york_workspace(url, workspace_id)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO sending_policies (workspace_id, quiet_start, quiet_end) VALUES ($1, '22:00', '07:30')",
            workspace_id,
        )
    finally:
        await conn.close()
    default = (time(21), time(8))
    windows = SendWindows(PgSendWindows(url, timeout_s=3, default_quiet=default), default_quiet=default)
    assert await windows.refresh()
    assert windows(workspace_id) == SendWindow("America/New_York", time(22), time(7, 30))
    assert windows("ws-unknown") == SendWindow("UTC", time(21), time(8))


@pytest.mark.timeout(400)
async def test_a_kill_while_recording_keeps_the_chosen_send_time(
    start_worker, kafka: Kafka, stack, workspace_id: str, tmp_path: Path
):
    """kill -9 once the second batch's changelog committed (local state not written): the
    restarted worker recovers the held wait, due at the same time, and fires nothing twice."""
    await new_york_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    await ensure_topics(
        CommonSettings(kafka_bootstrap=kafka.bootstrap, topic_partitions=2), [kafka.topics.events]
    )
    now = datetime.now(UTC)
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)
    hour = (now.astimezone(ZONE).hour + 6) % 24
    person = Person(workspace_id, "killed", day0, open_hour=hour)
    second = person.cart_again(now - timedelta(seconds=30))
    await kafka.send(*person.events)
    env = {
        "RETARGET_CAMPAIGNS_DIR": optimal_campaigns(tmp_path / "campaigns"),
        "RETARGET_GROUP_INSTANCE_ID": "w",  # the restart takes the partitions straight back
        **CAMPAIGN_ENV,
    }
    crashing = start_worker("worker", RETARGET_CRASH_AT="segmenter.after_changelog@2", **env)
    try:
        code = await asyncio.to_thread(crashing.process.wait, 180)
    except subprocess.TimeoutExpired:
        code = None
    assert code == -9, crashing.tail()
    assert "crash point segmenter.after_changelog reached" in crashing.log.read_text()

    restarted = start_worker("worker", port=crashing.port, **env)
    await asyncio.to_thread(restarted.wait_ready, 90)
    kafka.start_reading()
    markers = await kafka.after_markers(workspace_id)
    expected = next_local_hour(now - timedelta(seconds=30) + WAIT, hour)
    await pending_until(restarted.port, workspace_id, person.anon, expected)
    ids = kafka.ids()
    assert second not in ids and set(ids) == {person.first_trigger} | markers
    assert [i for i, n in ids.items() if n > 1] == [], "fired twice"
    assert restarted.stop() == 0
