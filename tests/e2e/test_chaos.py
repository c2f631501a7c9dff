"""Chaos: the demo's traffic flows while a runner kill -9s a random service every few seconds.

The four services run as processes on the real stack (Kafka, PostgreSQL, the SMTP capture).
A few hundred of the demo's visitors (retarget.demo.traffic, campaigns' waits shortened as the
demo does) are posted in paced chunks; meanwhile KILLS times a random service (ingest,
segmenter, composer, sender) gets SIGKILL and is restarted on its port with the same
settings and data folder. The client resends a chunk until it gets its 200 (the messageIds
make a resend harmless), as every Segment client does. Afterwards:

(a) every trigger an independent oracle expects from the traffic (which visitor should get
    which campaign, from the behaviour the generator gave them) fired, with exactly one
    trigger id per (campaign, recipient), and nothing else fired;
(b) no email twice: the SMTP capture saw each Message-ID once, the send log has each once;
(c) no outcome lost: every outbound message has a final delivery record (a message a kill cut
    off mid-SMTP gets failed/unconfirmed_claim from the sweep, after a lease shortened here).

Driven by counts and deadlines (KILLS kills, then wait for the oracle's count), never by speed.
"""

from __future__ import annotations

import asyncio
import email
import json
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from retarget.common.schemas import DeliveryRecorded, OutboundMessage, TriggerFired, decoder
from retarget.common.topics import Topics
from retarget.demo.traffic import Visitor, visitors, whole_visitor_chunks
from retarget.devstack.child import Child, free_port, start_child
from retarget.devstack.topic_reader import read_to_end

from .conftest import new_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

VISITORS = 300
KILLS = 8
PAUSE_BETWEEN_KILLS_S = 3.0  # pacing of the chaos (after each restart is healthy), not an expectation
CHUNK_EVENTS = 40
PAUSE_BETWEEN_CHUNKS_S = 1.5  # traffic keeps flowing through the kills
SETTLE_DEADLINE_S = 240.0  # to fail instead of hanging, after the last kill
WAIT_S = 4
CAMPAIGN_WAITS = {
    "abandoned_cart": f"{WAIT_S}s",
    "browse_abandonment": f"{WAIT_S}s",
    "post_purchase": f"{WAIT_S}s",
    "trial_not_converted": f"{WAIT_S}s",
    "repeat_abandoner_survey": "2s",
}
FINAL = {"sent", "bounced", "suppressed", "capped", "expired", "failed"}  # not "deferred"
PORT_VARS = {
    "ingest": "RETARGET_PORT",
    "segmenter": "RETARGET_WEB_PORT",
    "composer": "RETARGET_OPS_PORT",
    "sender": "RETARGET_OPS_PORT",
}


def expected_triggers(people: list[Visitor]) -> set[tuple[str, str]]:
    """The oracle: (campaign, recipient) that the campaign files promise for this traffic.

    Only visitors with an email qualify (has_email). A browser views and leaves; an abandoner
    adds to the cart and leaves (the product view it started with is exited by the add); a
    repeat abandoner does so a second time within 30 days (the survey); a buyer orders
    (thanked; the cart reminder is exited by the order); a trialist never converts.
    """
    promised = {
        "browser": ["browse_abandonment"],
        "cart_abandoner": ["abandoned_cart"],
        "repeat_abandoner": ["abandoned_cart", "repeat_abandoner_survey"],
        "buyer": ["post_purchase"],
        "trialist": ["trial_not_converted"],
    }
    return {
        (campaign, person.email)
        for person in people
        if person.email
        for campaign in promised.get(person.behaviour, [])
    }


@dataclass
class Fleet:
    """The four services on fixed ports; a killed one restarts with the same settings."""

    env: dict[str, str]
    logs: Path
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in PORT_VARS})
    ingest_ops_port: int = field(default_factory=free_port)  # else ingest binds the default one
    running: dict[str, Child] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)

    def start(self, name: str) -> Child:
        self.starts[name] += 1
        port = self.ports[name]
        child = start_child(
            name,
            f"retarget.{name}",
            env={
                **self.env,
                PORT_VARS[name]: str(port),
                "RETARGET_INGEST_OPS_PORT": str(self.ingest_ops_port),
            },
            port=port,
            log=self.logs / f"{name}-{self.starts[name]}.log",
            cwd=self.logs,
        )
        self.running[name] = child
        _wait_healthy(child)
        return child

    def kill9_and_restart(self, name: str) -> None:
        self.running[name].kill9()
        self.start(name)

    def kill_all(self) -> None:
        for child in self.running.values():
            if child.exited() is None:
                child.kill9()


def _wait_healthy(child: Child, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert child.exited() is None, f"{child.name} exited:\n{child.tail()}"
        try:
            if httpx.get(f"{child.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{child.name} not healthy after {timeout_s}s:\n{child.tail()}")


async def post_until_accepted(url: str, write_key: str, chunk: list[dict[str, Any]]) -> None:
    """A Segment client: resend the batch until a 200 (ingest may be dead or restarting)."""
    deadline = time.monotonic() + 180
    async with httpx.AsyncClient(base_url=url, auth=(write_key, ""), timeout=30) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.post("/v1/batch", json={"batch": chunk})
                if response.status_code == 200:
                    assert not response.json().get("rejected"), response.text[:300]
                    return
                assert response.status_code in (429, 503), response.text[:300]
            except httpx.TransportError:
                pass  # ingest was killed: its restart answers the resend
            await asyncio.sleep(1)
    pytest.fail("a batch got no 200 within 180 s")


async def send_traffic(fleet: Fleet, write_key: str, chunks: list[list[dict[str, Any]]]) -> None:
    for chunk in chunks:
        await post_until_accepted(fleet.running["ingest"].url, write_key, chunk)
        await asyncio.sleep(PAUSE_BETWEEN_CHUNKS_S)


async def kill_randomly(fleet: Fleet, rng: random.Random) -> list[str]:
    """KILLS kills in a random order that takes every service alike (twice each, with 8 kills)."""
    names = sorted(PORT_VARS)
    order = names * (KILLS // len(names)) + rng.sample(names, KILLS % len(names))
    rng.shuffle(order)
    killed = []
    for name in order:
        await asyncio.sleep(PAUSE_BETWEEN_KILLS_S)
        killed.append(name)
        await asyncio.to_thread(fleet.kill9_and_restart, name)
    return killed


@dataclass
class Results:
    triggers: list[TriggerFired]
    outbound: dict[str, OutboundMessage]
    outcomes: dict[str, list[str]]  # message id -> outcomes recorded, in order


async def read_results(bootstrap: str, topics: Topics, workspace_id: str) -> Results:
    triggers = [
        t
        for r in await read_to_end(bootstrap, topics.triggers)
        if (t := decoder(TriggerFired).decode(r.value)).workspace_id == workspace_id
    ]
    outbound = {
        m.message_id: m
        for r in await read_to_end(bootstrap, topics.outbound)
        if (m := decoder(OutboundMessage).decode(r.value)).workspace_id == workspace_id
    }
    outcomes: dict[str, list[str]] = {}
    for r in await read_to_end(bootstrap, topics.deliveries):
        d = decoder(DeliveryRecorded).decode(r.value)
        outcomes.setdefault(d.message_id, []).append(d.outcome)
    return Results(triggers, outbound, outcomes)


def settled(results: Results, expected: set[tuple[str, str]]) -> bool:
    fired = {(t.campaign, t.recipient.email) for t in results.triggers}
    finished = all(FINAL & set(results.outcomes.get(mid, [])) for mid in results.outbound)
    return expected <= fired and finished and len(results.outbound) > 0


def captured_message_ids(folder: Path, recipients: set[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in folder.glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        if str(msg["To"]).split("<")[-1].rstrip(">").strip() in recipients:
            found[str(msg["Message-ID"]).strip("<>").split("@")[0]] += 1
    return found


async def test_kill_9_of_random_services_under_demo_traffic_loses_nothing_and_sends_nothing_twice(
    stack: dict[str, str], capture_dir: Path, topic_prefix: str, workspace_id: str, tmp_path: Path
) -> None:
    write_key = await new_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    env = {
        **stack,
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": "2",
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
        "RETARGET_CAMPAIGN_WAITS": json.dumps(CAMPAIGN_WAITS),
        "RETARGET_DATA_DIR": str(tmp_path / "segmenter"),
        "RETARGET_GROUP_INSTANCE_ID": "segmenter-0",  # static membership: a restart rejoins at once
        "RETARGET_SENDER_GROUP": f"sender-{topic_prefix}",
        "RETARGET_SENDER_INSTANCE_ID": "sender-0",
        # a claim cut off by a kill -9 (mid-SMTP) is closed as failed/unconfirmed after the lease;
        # production's 600 s would outlast SETTLE_DEADLINE_S, and the capture answers in ms
        "RETARGET_CLAIM_LEASE_S": "15",
        "RETARGET_FREQUENCY_CAPS": "3/1h",
        "RETARGET_RATE_DOMAIN": "200/400",
    }
    seed = random.randrange(1 << 30)
    people = list(visitors(VISITORS, seed=seed))
    chunks = whole_visitor_chunks(people, max_events=CHUNK_EVENTS)
    expected = expected_triggers(people)
    topics = Topics(topic_prefix)
    fleet = Fleet(env, tmp_path)
    try:
        for name in ("segmenter", "composer", "sender", "ingest"):
            await asyncio.to_thread(fleet.start, name)
        traffic = asyncio.create_task(send_traffic(fleet, write_key, chunks))
        killed = await kill_randomly(fleet, random.Random(seed))
        await traffic
        deadline = time.monotonic() + SETTLE_DEADLINE_S
        results = await read_results(stack["RETARGET_KAFKA_BOOTSTRAP"], topics, workspace_id)
        while not settled(results, expected) and time.monotonic() < deadline:
            await asyncio.sleep(2)
            results = await read_results(stack["RETARGET_KAFKA_BOOTSTRAP"], topics, workspace_id)
        # the capture before the send log: an email composed from a trigger that came late (after
        # the settle) is claimed in the send log before it is sent, so whatever the capture holds
        # now the send log read next knows; read the other way round, such an email raced the check
        captured = captured_message_ids(capture_dir, {person.email for person in people if person.email})
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        try:
            send_log = Counter(
                row["message_id"]
                for row in await conn.fetch(
                    "SELECT message_id FROM send_log WHERE workspace_id = $1", workspace_id
                )
            )
        finally:
            await conn.close()
    finally:
        fleet.kill_all()

    ids_by_trigger = Counter(
        (t.campaign, t.recipient.email) for t in {t.trigger_id: t for t in results.triggers}.values()
    )
    fired = set(ids_by_trigger)
    missing = expected - fired
    unexpected = fired - expected
    repeated_triggers = {key: n for key, n in ids_by_trigger.items() if n > 1}
    emails_twice = {mid: n for mid, n in captured.items() if n > 1}
    no_outcome = {mid for mid in results.outbound if not FINAL & set(results.outcomes.get(mid, []))}
    print(
        f"\nchaos: events sent {sum(len(c) for c in chunks)} ({VISITORS} visitors, seed {seed}), "
        f"kills {len(killed)} {dict(Counter(killed))}, expected triggers {len(expected)}, "
        f"trigger ids {len(ids_by_trigger)} (records {len(results.triggers)}), outbound {len(results.outbound)}, "
        f"emails {sum(captured.values())}, send log {len(send_log)}, missing triggers {len(missing)}, "
        f"unexpected {len(unexpected)}, trigger ids repeated {len(repeated_triggers)}, "
        f"duplicates={len(emails_twice)}, lost={len(no_outcome)}"
    )
    assert len(killed) == KILLS and set(killed) == set(PORT_VARS)
    assert not missing, f"{len(missing)} expected triggers never fired, e.g. {sorted(missing)[:3]}"
    assert not unexpected, f"{len(unexpected)} triggers nobody expected, e.g. {sorted(unexpected)[:3]}"
    assert not repeated_triggers, (
        f"one campaign fired twice for a recipient: {list(repeated_triggers.items())[:3]}"
    )
    assert not emails_twice, f"{len(emails_twice)} emails reached the SMTP server twice"
    assert set(captured) <= set(send_log), "an email the send log doesn't know"
    assert not no_outcome, f"{len(no_outcome)} outbound messages without a final delivery record"
