"""Several processes of every service on the real stack, gmail.com-only traffic (#19).

Two ingests, two segmenters, two composers and three senders run as processes on a 6-partition
topic set; the demo's visitors (retarget.demo.traffic), all of them at gmail.com, are posted
through both ingests. The senders deliver to an SMTP sink in this test that notes, for every
accepted message, when its transaction began (RCPT) and which sender sent it (its EHLO name).
Mid-run one process of each kind gets SIGKILL and stays dead. Afterwards:

(a) all three senders delivered gmail.com mail: the domain is spread over every partition;
(b) over every sliding window the sink saw no more gmail.com mail than the configured limit
    allows the group: burst + one per sender (the shares' floors) + rate × (window + LAG_S);
(c) every trigger the oracle expects fired once, each outbound message has one final outcome,
    no Message-ID reached the sink twice, and every message was delivered except at most the
    killed sender's in-flight ones (`failed/unconfirmed_claim`, never resent).

Driven by counts and deadlines, never by speed.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from retarget.common.schemas import DeliveryRecorded, decoder
from retarget.common.testing import most_in_any_window
from retarget.common.topics import Topics
from retarget.demo.traffic import Visitor, visitors, whole_visitor_chunks
from retarget.devstack.child import Child, free_port, start_child
from retarget.devstack.topic_reader import read_to_end

from .conftest import new_workspace
from .test_chaos import CAMPAIGN_WAITS, FINAL, _wait_healthy, expected_triggers, read_results, settled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

VISITORS = 120
PARTITIONS = 6
SENDERS = 3
CONNECTIONS = 2  # per sender: what a SIGKILL can leave claimed
GMAIL_RATE, GMAIL_BURST = 4.0, 3  # the group's limit for gmail.com
# a message goes out when its token is due or later (a loaded event loop, a pooled connection
# to wait for), so later messages can catch up with a late one: the bound allows one second
LAG_S = 1.0
WINDOWS_S = (1.0, 2.0, 5.0, 10.0)
SETTLE_DEADLINE_S = 420.0
PORT_VARS = {
    "ingest": "RETARGET_PORT",
    "segmenter": "RETARGET_WEB_PORT",
    "composer": "RETARGET_OPS_PORT",
    "sender": "RETARGET_OPS_PORT",
}
COUNTS = {"ingest": 2, "segmenter": 2, "composer": 2, "sender": SENDERS}


@dataclass
class Accepted:
    started: float  # monotonic, at RCPT: when the sender began the transaction
    sender: str  # its EHLO name
    message_id: str
    recipient: str


@dataclass
class Sink:
    """An SMTP server that accepts everything and notes when and from whom."""

    accepted: list[Accepted] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        envelope.started = time.monotonic()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = str(message_from_bytes(envelope.content)["Message-ID"]).strip("<>").split("@")[0]
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.accepted.append(Accepted(envelope.started, session.host_name, message_id, rcpt))
        return "250 2.0.0 Ok: queued"

    def snapshot(self, recipients: set[str]) -> list[Accepted]:
        with self.lock:
            return [a for a in self.accepted if a.recipient in recipients]


def at_gmail(people: list[Visitor]) -> list[Visitor]:
    """The demo's visitors with their addresses moved to gmail.com (one domain, the big one)."""
    for person in people:
        if person.email:
            person.email = person.email.split("@")[0] + "@gmail.com"
            for event in person.events:
                if event.get("traits", {}).get("email"):
                    event["traits"]["email"] = person.email
    return people


def _readyz(child: Child) -> dict[str, Any]:
    try:
        return dict(httpx.get(f"{child.url}/readyz", timeout=5).json())
    except (httpx.TransportError, ValueError):
        return {}


@dataclass
class Fleet:
    env: dict[str, str]
    logs: Path
    running: dict[str, list[Child]] = field(default_factory=dict)

    def start(self, name: str, index: int) -> Child:
        port = free_port()
        own = {
            PORT_VARS[name]: str(port),
            "RETARGET_INGEST_OPS_PORT": str(free_port()),
            "RETARGET_DATA_DIR": str(self.logs / f"segmenter-{index}"),
            "RETARGET_GROUP_INSTANCE_ID": f"segmenter-{index}",
            "RETARGET_SENDER_INSTANCE_ID": f"sender-{index}",
            "RETARGET_SMTP_HELO_NAME": f"sender-{index}",
        }
        child = start_child(
            f"{name}-{index}",
            f"retarget.{name}",
            env={**self.env, **own},
            port=port,
            log=self.logs / f"{name}-{index}.log",
            cwd=self.logs,
        )
        self.running.setdefault(name, []).append(child)
        return child

    def alive(self, name: str) -> list[Child]:
        return [c for c in self.running.get(name, []) if c.exited() is None]

    def kill_all(self) -> None:
        for children in self.running.values():
            for child in children:
                if child.exited() is None:
                    child.kill9()


async def post_to_any_ingest(fleet: Fleet, write_key: str, chunk: list[dict[str, Any]]) -> None:
    """A Segment client with two endpoints: resend to whichever ingest answers until a 200."""
    deadline = time.monotonic() + 180
    async with httpx.AsyncClient(auth=(write_key, ""), timeout=30) as client:
        while time.monotonic() < deadline:
            for ingest in fleet.alive("ingest"):
                try:
                    response = await client.post(f"{ingest.url}/v1/batch", json={"batch": chunk})
                except httpx.TransportError:
                    continue  # killed: the other one answers the resend
                if response.status_code == 200:
                    assert not response.json().get("rejected"), response.text[:300]
                    return
                assert response.status_code in (429, 503), response.text[:300]
            await asyncio.sleep(1)
    pytest.fail("a batch got no 200 within 180 s")


async def send_traffic(fleet: Fleet, write_key: str, chunks: list[list[dict[str, Any]]]) -> None:
    for n, chunk in enumerate(chunks):
        if n == len(chunks) // 2:
            fleet.alive("ingest")[0].kill9()  # mid-traffic: the client turns to the other one
        await post_to_any_ingest(fleet, write_key, chunk)
        await asyncio.sleep(0.5)


async def _until(check: Any, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            pytest.fail(f"not after {timeout_s}s: {what}")
        await asyncio.sleep(1)


def senders_split_the_partitions(fleet: Fleet) -> bool:
    shown = [_readyz(s) for s in fleet.alive("sender")]
    owned = [p for r in shown for p in r.get("outbound_partitions", [])]
    return sorted(owned) == list(range(PARTITIONS)) and all(r.get("outbound_partitions") for r in shown)


async def outcomes_by_message(bootstrap: str, topics: Topics) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = {}
    for record in await read_to_end(bootstrap, topics.deliveries):
        d = decoder(DeliveryRecorded).decode(record.value)
        if d.outcome in FINAL:
            found.setdefault(d.message_id, set()).add((d.outcome, d.reason))
    return found


async def test_every_service_several_times_gmail_only_spread_limited_and_kill_safe(
    stack: dict[str, str], topic_prefix: str, workspace_id: str, tmp_path: Path
) -> None:
    write_key = await new_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    sink = Sink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    env = {
        **stack,
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": str(PARTITIONS),
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
        "RETARGET_CAMPAIGN_WAITS": json.dumps(CAMPAIGN_WAITS),
        "RETARGET_SENDER_GROUP": f"sender-{topic_prefix}",
        "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "RETARGET_SMTP_CONNECTIONS": str(CONNECTIONS),
        "RETARGET_RATE_DOMAINS": f"gmail.com={GMAIL_RATE:g}/{GMAIL_BURST}",
        "RETARGET_FREQUENCY_CAPS": "3/1h",
        "RETARGET_CLAIM_LEASE_S": "5",
        "RETARGET_RETRY_POLL_S": "0.5",
    }
    seed = random.randrange(1 << 30)
    people = at_gmail(list(visitors(VISITORS, seed=seed)))
    recipients = {p.email for p in people if p.email}
    chunks = whole_visitor_chunks(people, max_events=30)
    expected = expected_triggers(people)
    topics = Topics(topic_prefix)
    bootstrap = stack["RETARGET_KAFKA_BOOTSTRAP"]
    fleet = Fleet(env, tmp_path)
    killed: list[str] = []
    try:
        for name in ("segmenter", "composer", "sender", "ingest"):
            for index in range(COUNTS[name]):
                fleet.start(name, index)
        for children in fleet.running.values():
            for child in children:
                await asyncio.to_thread(_wait_healthy, child, 180)
        # the senders' group settled before the traffic: the rate is measured between rebalances
        # only where a kill makes one
        await _until(lambda: senders_split_the_partitions(fleet), "three senders own the 6 partitions", 180)

        traffic = asyncio.create_task(send_traffic(fleet, write_key, chunks))
        killed.append("ingest")
        # the rest die once mail flows: mid-run, with messages in every stage
        await _until(lambda: len(sink.snapshot(recipients)) >= len(expected) // 5, "a fifth of the mail", 300)
        for name in ("segmenter", "composer", "sender"):
            fleet.alive(name)[0].kill9()
            killed.append(name)
            await asyncio.sleep(2)
        await traffic

        deadline = time.monotonic() + SETTLE_DEADLINE_S
        results = await read_results(bootstrap, topics, workspace_id)
        while not settled(results, expected) and time.monotonic() < deadline:
            await asyncio.sleep(2)
            results = await read_results(bootstrap, topics, workspace_id)
        outcomes = await outcomes_by_message(bootstrap, topics)
        await asyncio.sleep(3)  # a late second copy would reach the sink now
        accepted = sink.snapshot(recipients)
    finally:
        fleet.kill_all()
        controller.stop()
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])  # the send log is shared
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
        await conn.close()

    by_trigger = Counter(
        (t.campaign, t.recipient.email) for t in {t.trigger_id: t for t in results.triggers}.values()
    )
    emails = Counter(a.message_id for a in accepted)
    by_sender = Counter(a.sender for a in accepted)
    worst = {w: most_in_any_window([a.started for a in accepted], w) for w in WINDOWS_S}
    allowed = {w: GMAIL_BURST + SENDERS + GMAIL_RATE * (w + LAG_S) for w in WINDOWS_S}
    final = {mid: outcomes.get(mid, set()) for mid in results.outbound}
    unconfirmed = {mid for mid, o in final.items() if o == {("failed", "unconfirmed_claim")}}
    print(
        f"\nscale-out: seed {seed}, visitors {VISITORS}, expected triggers {len(expected)}, outbound "
        f"{len(results.outbound)}, emails {sum(emails.values())}, by sender {dict(by_sender)}, killed {killed}, "
        f"most in a window {worst} (allowed {allowed}), unconfirmed {len(unconfirmed)}"
    )
    assert sorted(killed) == sorted(PORT_VARS)
    # (a) every sender process sent gmail.com mail
    assert set(by_sender) == {f"sender-{i}" for i in range(SENDERS)}, by_sender
    # (b) the group kept to the domain's limit at the sink
    over = {w: (worst[w], allowed[w]) for w in WINDOWS_S if worst[w] > allowed[w]}
    assert not over, f"gmail.com over its limit at the sink (window: seen, allowed): {over}"
    # (c) nothing lost, nothing twice
    fired = set(by_trigger)
    assert expected <= fired, f"{len(expected - fired)} expected triggers never fired"
    assert fired <= expected, f"{len(fired - expected)} triggers nobody expected"
    assert max(by_trigger.values()) == 1, "one campaign fired twice for a recipient"
    assert not [mid for mid, n in emails.items() if n > 1], "an email reached the SMTP server twice"
    assert all(len(o) == 1 for o in final.values()), "a message without exactly one final outcome"
    assert set(emails) <= set(results.outbound), "an email no outbound message asked for"
    assert len(unconfirmed) <= CONNECTIONS, "more cut off mid-SMTP than the killed sender had in flight"
    delivered = {mid for mid, o in final.items() if o == {("sent", "accepted")}}
    assert delivered | unconfirmed == set(results.outbound), "a message neither sent nor cut off by the kill"
    assert delivered <= set(emails), "recorded as sent, never seen by the SMTP server"
