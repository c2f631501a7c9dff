"""Variants and holdout through all four services on the real stack: every visitor gets the arm
the stable hash gives them (and keeps it when the campaign fires again), held-out visitors get
no email at the capture while their firing and their later order are counted, and
`retarget funnel --json` carries the experiment fields."""

from __future__ import annotations

import asyncio
import email
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import httpx
import pytest
import yaml

from retarget.cli._config import config_service
from retarget.common.settings import CommonSettings
from retarget.config.campaign_schema import CampaignFile
from retarget.config.defaults import bundled_campaigns
from retarget.segmenter import experiments
from retarget.segmenter.campaigns import Campaign

pytestmark = pytest.mark.e2e
VISITORS = 24
GLOBAL = 0.2  # the workspace's global holdout, drawn before the campaign's 50%
DEADLINE_S = 180  # generous: the machine is shared and loaded
SUBJECTS = {"a": "Variant A for {{ recipient.first_name }}", "b": "Variant B for {{ recipient.first_name }}"}


def subject_of(arm: str) -> str:
    return SUBJECTS[arm].replace("{{ recipient.first_name }}", "Ann")


def campaign_file(folder: Path) -> Campaign:
    """The bundled abandoned cart with two variants, a 50% holdout and no cooldown (so a second
    cart add fires again and shows the arm is kept)."""
    body = {
        **bundled_campaigns()["abandoned_cart"],
        "cooldown": "0s",
        "variants": [{"name": arm, "weight": 1, "subject": subject} for arm, subject in SUBJECTS.items()],
        "holdout": "50%",
    }
    folder.mkdir()
    (folder / "abandoned_cart.yaml").write_text(yaml.safe_dump(body))
    return Campaign.from_file(CampaignFile.model_validate(body))


class Inbox:
    """The capture's mail for some recipients, read incrementally from the envelopes (.json):
    the shared capture holds thousands of other tests' and demos' messages."""

    def __init__(self, folder: Path, recipients: set[str]) -> None:
        self.folder, self.recipients = folder, recipients
        self.since = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() - 5))
        self.seen: set[str] = set()
        self.by_recipient: dict[str, list[EmailMessage]] = {}

    def read(self) -> dict[str, list[EmailMessage]]:
        for path in sorted(self.folder.glob("*.json")):
            if path.name < self.since or path.name in self.seen:
                continue
            self.seen.add(path.name)
            envelope = json.loads(path.read_text())
            for rcpt in set(envelope["rcpt_tos"]) & self.recipients:
                raw = (self.folder / envelope["eml"]).read_bytes()
                message = email.message_from_bytes(raw, policy=default_policy)
                self.by_recipient.setdefault(rcpt, []).append(message)  # type: ignore[arg-type]
        return self.by_recipient

    def subjects(self, recipient: str) -> list[str]:
        return [str(m["Subject"]) for m in self.read().get(recipient, [])]


def counter(url: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def poll(what: str, check, logs) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"{what} not within {DEADLINE_S}s\n{logs()}")


async def test_arms_are_stable_held_out_visitors_get_nothing_and_their_orders_count(
    launch, stack: dict[str, str], capture_dir: Path, topic_prefix: str, workspace_id: str, tmp_path: Path
):
    from .conftest import new_workspace

    campaign = campaign_file(tmp_path / "campaigns")
    write_key = await new_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    # the workspace's global control group, on the change feed the segmenter reads at start
    feed = CommonSettings(
        kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"],
        database_url=stack["RETARGET_DATABASE_URL"],
        topic_prefix=topic_prefix,
    )
    async with config_service(feed) as service:
        assert service is not None
        await service.apply(workspace_id, "policy", "", {"global_holdout": f"{GLOBAL:.0%}"}, author="test")
    common = {
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": "2",
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
        "RETARGET_FREQUENCY_CAPS": "10/1h",  # the second reminder must not be capped
    }
    segmenter_env = {
        **common,
        "RETARGET_CAMPAIGNS_DIR": str(tmp_path / "campaigns"),
        "RETARGET_CART_WAIT_S": "1",
        "RETARGET_DATA_DIR": str(tmp_path / "segmenter"),
    }
    services = [
        launch("ingest", "RETARGET_PORT", common),
        launch("segmenter", "RETARGET_WEB_PORT", segmenter_env),
        launch("composer", "RETARGET_OPS_PORT", common),
        launch("sender", "RETARGET_OPS_PORT", common),
    ]
    for service in services:
        await asyncio.to_thread(service.wait_healthy)
    ingest, segmenter = services[0], services[1]
    metrics_url = f"{segmenter.url}/metrics"

    def logs() -> str:
        return "\n\n".join(f"--- {s.name}\n{s.tail()}" for s in services)

    def draw_people() -> tuple[dict[str, str], dict[str, str]]:
        """Visitors with someone in each group (ids are random; the arms follow from them)."""
        while True:
            run = uuid.uuid4().hex[:8]
            people = {f"anon-{run}-{i}": f"exp-{run}-{i}@example.com" for i in range(VISITORS)}
            expected = {
                p: "global_holdout"
                if experiments.in_global_holdout(workspace_id, p, GLOBAL)
                else experiments.arm_of(experiments.unit_draw(workspace_id, "abandoned_cart", p), campaign)
                for p in people
            }
            if {"global_holdout", "holdout", "a", "b"} <= set(expected.values()):
                return people, expected

    people, expected = draw_people()
    run = next(iter(people)).split("-")[1]
    globally = {p for p, arm in expected.items() if arm == "global_holdout"}
    held_out = {p for p, arm in expected.items() if arm.endswith("holdout")}
    inbox = Inbox(capture_dir, set(people.values()))
    treated = set(people) - held_out

    async with httpx.AsyncClient(base_url=ingest.url, auth=(write_key, ""), timeout=10) as client:

        async def post(path: str, body: dict) -> None:  # type: ignore[type-arg]
            response = await client.post(path, json=body)
            assert response.status_code == 200, response.text

        async def cart_add(visitor: str, product: str) -> None:
            await post(
                "/v1/track",
                {
                    "anonymousId": visitor,
                    "event": "Product Added",
                    "properties": {
                        "product_id": product,
                        "name": "Trail Boot",
                        "price": 89.5,
                        "currency": "EUR",
                    },
                },
            )

        for visitor, address in people.items():
            await post(
                "/v1/identify", {"anonymousId": visitor, "traits": {"email": address, "firstName": "Ann"}}
            )
            await cart_add(visitor, "boot-1")

        # every firing is counted, held out or not: the held-out ones have fired once this says so
        def all_assigned() -> bool:
            counted = counter(
                metrics_url, "retarget_segmenter_experiment_assigned_total", workspace=workspace_id
            )
            return counted >= VISITORS

        await poll("every visitor assigned", all_assigned, logs)
        await poll(
            "an email for every treated visitor",
            lambda: all(inbox.subjects(people[p]) for p in treated),
            logs,
        )
        for visitor in treated:
            assert inbox.subjects(people[visitor]) == [subject_of(expected[visitor])]
        # the held-out visitors' triggers never reached Kafka: no email can come later either
        assert not any(inbox.subjects(people[p]) for p in held_out)

        # the same visitors come back: the campaign fires again, in the same arm
        returning = sorted(treated)[:3]
        for visitor in returning:
            await cart_add(visitor, "boot-2")
        await poll(
            "a second email for the returning visitors",
            lambda: all(len(inbox.subjects(people[p])) == 2 for p in returning),
            logs,
        )
        for visitor in returning:
            assert inbox.subjects(people[visitor]) == [subject_of(expected[visitor])] * 2

        # held-out and treated visitors buy; no email was opened: intent to treat counts both
        buyer_out, buyer_in = sorted(held_out)[0], sorted(treated)[0]
        for n, visitor in enumerate((buyer_out, buyer_in)):
            order = {"order_id": f"o-{run}-{n}", "revenue": 40.0, "currency": "EUR"}
            await post("/v1/track", {"anonymousId": visitor, "event": "Order Completed", "properties": order})

        def converted(arm: str) -> float:
            return counter(
                metrics_url,
                "retarget_segmenter_experiment_conversions_total",
                workspace=workspace_id,
                arm=arm,
            )

        await poll("the held-out order counted", lambda: converted(expected[buyer_out]) == 1, logs)
        await poll("the treated order counted", lambda: converted(expected[buyer_in]) == 1, logs)

    command = [sys.executable, "-m", "retarget.cli.main", "funnel", "--json", "--workspace", workspace_id]
    funnel = await asyncio.to_thread(
        subprocess.run,
        [*command, "--metrics", metrics_url],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        check=True,
    )
    [row] = [r for r in json.loads(funnel.stdout) if r["campaign"] == "abandoned_cart"]
    assert row["holdout"]["assigned"] == len(held_out - globally)
    assert row["global_holdout"]["assigned"] == len(globally)
    converted_out = row["holdout"]["converted"] + row["global_holdout"]["converted"]
    assert converted_out == 1  # the held-out buyer, in whichever control group
    assert sum(v["assigned"] for v in row["variants"].values()) == len(treated) + len(returning)
    assert set(row["variants"]) == {expected[p] for p in treated}
    for field in ("lift", "lift_ci_low", "lift_ci_high", "revenue_lift"):
        assert field in row
    assert row["lift_conclusion"] == "too_small"  # two dozen visitors conclude nothing
