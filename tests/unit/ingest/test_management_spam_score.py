"""`POST …/templates/{name}/preview?spam_score=true` through the ASGI app: the complete
rendered message goes to the scorer and its score comes back in the answer; a scorer that
can't run is a 503 naming why; anything but true/false is a 400. (SpamAssassin itself:
tests/integration/ingest/test_management_spam_score.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from retarget.common.testing import FakeClock
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.errors import Unavailable
from retarget.ingest.main import create_app
from retarget.ingest.management.context import Management, SpamScoring
from retarget.ingest.settings import IngestSettings
from retarget.ingest.testing import FakeConfigStore, FakeKeys, FakePublisher, FakeSecretKeys

ADMIN = "rt_sk_admin_ws1"
PREVIEW = "/v1/workspaces/ws1/templates/cart/preview"
BUNDLED = {"campaign": {}, "template": {"cart": {"subject": "Your cart", "html": "<p>hi</p>", "text": "hi"}}}


async def render(ws: str, name: str, body: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    return {**body, "message": f"Subject: {body['subject']}\r\n\r\nfor {ws}\r\n"}


async def no_profile(ws: str, profile_id: str) -> None:
    return None


def client(score_spam: SpamScoring | None) -> httpx.AsyncClient:
    settings = IngestSettings(topic_prefix="unitspam", max_batch_bytes=4096)
    store = FakeConfigStore(validate=lambda kind, name, body: dict(body))
    services = bootstrap(
        settings,
        publisher=FakePublisher(),
        key_lookup=FakeKeys({}),
        secret_key_lookup=FakeSecretKeys({ADMIN: ("ws1", {"admin"})}),
        management=Management(
            store,
            lambda kind: BUNDLED[kind],
            render,
            no_profile,
            db=None,
            max_body_bytes=4096,
            score_spam=score_spam,
        ),
        clock=FakeClock(),
        monotonic=lambda: 0.0,
    )
    transport = httpx.ASGITransport(app=create_app(settings, services=services))
    return httpx.AsyncClient(
        transport=transport, base_url="http://ingest", headers={"Authorization": f"Bearer {ADMIN}"}
    )


@pytest.fixture
async def scored() -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    messages: list[str] = []

    async def score(message: str) -> dict[str, Any]:
        messages.append(message)
        return {"score": 1.5, "threshold": 5.0, "rules": [{"name": "R", "points": 1.5, "description": "d"}]}

    async with client(score) as c:
        yield c, messages


async def test_the_preview_scores_the_complete_message_only_when_asked(scored) -> None:
    api, messages = scored
    plain = await api.post(PREVIEW)
    assert plain.status_code == 200 and "spam_score" not in plain.json() and messages == []
    assert "message" not in plain.json()  # the raw message stays inside
    answer = await api.post(PREVIEW, params={"spam_score": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["spam_score"]["score"] == 1.5
    assert answer.json()["subject"] == "Your cart"
    assert messages == ["Subject: Your cart\r\n\r\nfor ws1\r\n"]
    assert (await api.post(PREVIEW, params={"spam_score": "false"})).json().get("spam_score") is None


@pytest.mark.parametrize("value", ["yes", "1", "", "TRUE"])
async def test_a_spam_score_other_than_true_or_false_is_a_400_naming_it(scored, value) -> None:
    api, messages = scored
    answer = await api.post(PREVIEW, params={"spam_score": value})
    assert answer.status_code == 400 and answer.json()["field"] == "spam_score"
    assert messages == []


async def test_without_spamassassin_the_answer_is_a_503_naming_the_package() -> None:
    async def missing(message: str) -> dict[str, Any]:
        raise Unavailable("no spam score: install the Debian package spamassassin", retry_after_s=300)

    async with client(missing) as api:
        answer = await api.post(PREVIEW, params={"spam_score": "true"})
    assert answer.status_code == 503 and "spamassassin" in answer.json()["message"]
    assert answer.headers["Retry-After"] == "300"
    async with client(None) as api:
        unwired = await api.post(PREVIEW, params={"spam_score": "true"})
        assert unwired.status_code == 503 and "SpamAssassin" in unwired.json()["message"]
        assert (await api.post(PREVIEW)).status_code == 200  # the preview itself still works


def wired() -> Management:
    from retarget.ingest.management.wiring import management
    from retarget.ingest.pool import LazyPool

    settings = IngestSettings(topic_prefix="unitspam")
    return management(settings, LazyPool(settings), profiles=None)  # type: ignore[arg-type]


async def test_the_wired_scorer_without_spamassassin_is_a_503_naming_the_package(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no spamassassin to run
    score_spam = wired().score_spam
    assert score_spam is not None
    with pytest.raises(Unavailable, match="install the Debian package spamassassin"):
        await score_spam("Subject: x\r\n\r\nx\r\n")


async def test_the_wired_scorer_runs_at_most_two_spamassassins_at_once(monkeypatch) -> None:
    import threading
    import time

    from retarget.composer.spam_score import SpamScore
    from retarget.composer.spamassassin import SpamAssassin

    lock, active, most = threading.Lock(), [0], [0]

    def slow_score(self: SpamAssassin, messages: list[str]) -> list[SpamScore]:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return [SpamScore(0.0, ()) for _ in messages]

    monkeypatch.setattr(SpamAssassin, "score", slow_score)
    score_spam = wired().score_spam
    assert score_spam is not None
    answers = await asyncio.gather(*(score_spam("Subject: x\r\n\r\nx\r\n") for _ in range(5)))
    assert [a["score"] for a in answers] == [0.0] * 5
    assert most[0] <= 2
