"""POST /v1/privacy/{erase,export} through the ASGI app, with fakes for Kafka, PostgreSQL and the segmenter."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest

from retarget.common.identity import email_digest
from retarget.common.privacy import ErasureReport, Person, erasure_key, privacy_topic
from retarget.common.privacy_requests import FoundProfiles, PrivacySettings, SegmenterProfiles
from retarget.common.schemas import ErasureRequested
from retarget.common.testing import FakeClock
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.main import create_app
from retarget.ingest.settings import IngestSettings
from retarget.ingest.testing import FakeKeys, FakePublisher, FakeSecretKeys

KEY = "rt_sk_privacy_key"
WRITE_KEY = "wk_public_key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@dataclass
class FakeRecords:
    """PostgreSQL's half: remembers what it was asked."""

    erased: list[tuple[Person, set[bytes]]] = field(default_factory=list)
    exported: list[Person] = field(default_factory=list)

    async def erase(self, person: Person, *, source: str, also_email_hashes: set[bytes]) -> ErasureReport:
        self.erased.append((person, also_email_hashes))
        return ErasureReport(suppressed=len(also_email_hashes), send_log_rows=2, retries_deleted=0)

    async def export(self, person: Person, *, also_email_hashes: set[bytes]) -> dict[str, Any]:
        self.exported.append(person)
        return {"workspace_id": person.workspace_id, "messages": [], "suppressions": []}


@dataclass
class FakeProfiles:
    profiles: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None

    async def find(self, person: Person) -> FoundProfiles:
        return FoundProfiles(self.profiles, self.problem)


@dataclass
class Harness:
    client: httpx.AsyncClient
    publisher: FakePublisher
    records: FakeRecords
    profiles: FakeProfiles

    def requests(self) -> list[tuple[bytes, ErasureRequested]]:
        return [(k, msgspec.json.decode(v, type=ErasureRequested)) for _, k, v in self.publisher.sent]


@pytest.fixture
async def ingest() -> AsyncIterator[Harness]:
    settings = IngestSettings(topic_prefix="unitp")
    publisher, records, profiles = FakePublisher(), FakeRecords(), FakeProfiles()
    services = bootstrap(
        settings,
        publisher=publisher,
        key_lookup=FakeKeys({WRITE_KEY: "ws1"}),
        secret_key_lookup=FakeSecretKeys({KEY: ("ws1", {"privacy"}), "rt_sk_admin_only": ("ws1", {"admin"})}),
        person_records=records,
        profile_finder=profiles,
        clock=FakeClock(),
        monotonic=lambda: 0.0,  # no time passes: rate-limit buckets never refill
    )
    transport = httpx.ASGITransport(app=create_app(settings, services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        yield Harness(client, publisher, records, profiles)


async def test_erase_by_user_id_reaches_the_profile_and_the_address_the_segmenter_knew(ingest: Harness):
    ingest.profiles.profiles = [{"profile_id": "u-1", "email": "Ann@Example.com"}]
    response = await ingest.client.post(
        "/v1/privacy/erase", json={"userId": "u-1", "workspaceId": "someone-elses"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["erased"] is True and report["workspace_id"] == "ws1"  # the key's, never the body's
    assert report["segmenter"] == {"requests_published": 2, "profiles_found": 1}

    topics = {topic for topic, _, _ in ingest.publisher.sent}
    assert topics == {privacy_topic("unitp")}
    ann = email_digest("ann@example.com")
    (by_profile, to_profile), (by_email, to_index) = ingest.requests()
    assert (by_profile, to_profile.profile_id, to_profile.workspace_id) == (b"ws1:u-1", "u-1", "ws1")
    assert (by_email, to_index.email_hash) == (erasure_key("ws1", ann.hex()), ann.hex())
    ((person, hashes),) = ingest.records.erased
    assert (person.workspace_id, person.user_id, hashes) == ("ws1", "u-1", {ann})


async def test_nothing_is_erased_when_kafka_is_away(ingest: Harness):
    ingest.publisher.down = True
    response = await ingest.client.post("/v1/privacy/erase", json={"email": "ann@example.com"}, headers=AUTH)
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert ingest.records.erased == []


async def test_export_includes_the_profiles_or_says_why_not(ingest: Harness):
    ingest.profiles.profiles = [{"profile_id": "u-1", "email": "ann@example.com", "cart": {}}]
    response = await ingest.client.post("/v1/privacy/export", json={"email": "ann@example.com"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["profiles"][0]["profile_id"] == "u-1" and "notes" not in response.json()
    assert response.headers["cache-control"] == "no-store"

    ingest.profiles.profiles, ingest.profiles.problem = [], "the segmenter did not answer"
    response = await ingest.client.post("/v1/privacy/export", json={"userId": 42}, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["notes"] == ["segmenter profiles not included: the segmenter did not answer"]
    assert ingest.records.exported[-1].user_id == "42"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "email"),
        ({"email": "not-an-address"}, 400, "email"),
        ({"email": 5}, 400, "email"),
        ({"userId": ""}, 400, "userId"),
        ({"userId": True}, 400, "userId"),
        ({"userId": "x" * 300}, 400, "userId"),
    ],
)
async def test_bad_bodies_are_400s_naming_the_field(ingest: Harness, body, status, field):
    response = await ingest.client.post("/v1/privacy/erase", json=body, headers=AUTH)
    assert (response.status_code, response.json().get("field")) == (status, field), response.text
    assert ingest.publisher.sent == [] and ingest.records.erased == []


async def test_not_json_and_too_large_are_client_errors(ingest: Harness):
    not_json = await ingest.client.post("/v1/privacy/export", content=b"{nope", headers=AUTH)
    assert not_json.status_code == 400 and not_json.json()["code"] == "invalid_payload"
    an_array = await ingest.client.post("/v1/privacy/export", json=["ann@example.com"], headers=AUTH)
    assert an_array.status_code == 400
    huge = await ingest.client.post("/v1/privacy/export", json={"email": "a@b.c" + " " * 5000}, headers=AUTH)
    assert huge.status_code == 413


@pytest.mark.parametrize(
    ("headers", "body_key", "status", "code"),
    [
        ({}, None, 401, "unauthorized"),
        (AUTH | {"Authorization": "Bearer rt_sk_unknown"}, None, 401, "unauthorized"),
        ({}, KEY, 401, "unauthorized"),  # a secret key in the body (it would end up in logs)
        ({"Authorization": "Basic !!!not-base64"}, None, 401, "unauthorized"),
        (basic(WRITE_KEY), None, 403, "secret_key_required"),  # the public key, even a valid one
        ({}, WRITE_KEY, 403, "secret_key_required"),
        ({"Authorization": "Bearer something-else"}, None, 403, "secret_key_required"),
        ({"Authorization": "Bearer rt_sk_admin_only"}, None, 403, "insufficient_scope"),
    ],
)
async def test_only_a_secret_key_with_the_privacy_scope_is_let_in(
    ingest: Harness, headers, body_key, status, code
):
    body = {"email": "ann@example.com"} | ({"writeKey": body_key} if body_key else {})
    for path in ("/v1/privacy/erase", "/v1/privacy/export"):
        response = await ingest.client.post(path, json=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert response.json()["needed"] == {"credential": "secret_key", "scope": "privacy"}
        assert "secret key" in response.json()["message"] and "`privacy`" in response.json()["message"]
    assert ingest.publisher.sent == [] and ingest.records.exported == [] and ingest.records.erased == []


@pytest.mark.parametrize("body", [b"{nope", b'{"email": 5}', b"{}", b'["ann@example.com"]'])
async def test_a_request_without_a_valid_secret_key_is_401_before_its_body_is_judged(
    ingest: Harness, body: bytes
):
    """Who is asking comes first: without a key the answer is 401, whatever the body holds."""
    for headers in ({}, {"Authorization": "Bearer rt_sk_unknown"}):
        response = await ingest.client.post("/v1/privacy/export", content=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (401, "unauthorized"), response.text
    write_key = await ingest.client.post("/v1/privacy/export", content=body, headers=basic(WRITE_KEY))
    assert write_key.status_code == 403, write_key.text
    judged = await ingest.client.post("/v1/privacy/export", content=body, headers=AUTH)
    assert judged.status_code == 400, judged.text  # with the key, the body's problem is named


@pytest.mark.parametrize("header", [f"Bearer {KEY}", f"bearer  {KEY}", f"BEARER {KEY} "])
async def test_the_bearer_scheme_is_case_blind_and_the_key_trimmed(ingest: Harness, header: str):
    response = await ingest.client.post(
        "/v1/privacy/export", json={"userId": "u"}, headers={"Authorization": header}
    )
    assert response.status_code == 200, response.text


async def test_a_write_key_is_told_it_is_public_and_a_secret_key_works_as_basic_too(ingest: Harness):
    refused = await ingest.client.post("/v1/privacy/export", json={"userId": "u"}, headers=basic(WRITE_KEY))
    assert "write key" in refused.json()["message"] and "public" in refused.json()["message"]
    accepted = await ingest.client.post("/v1/privacy/export", json={"userId": "u"}, headers=basic(KEY))
    assert accepted.status_code == 200, accepted.text


async def test_a_secret_key_is_rate_limited_per_key(ingest: Harness):
    burst = IngestSettings().rate_limit_secret_key_burst
    answers = [
        (await ingest.client.post("/v1/privacy/export", json={"userId": "u"}, headers=AUTH)).status_code
        for _ in range(burst + 1)
    ]
    assert answers == [200] * burst + [429]


async def test_a_secret_key_never_sends_events(ingest: Harness):
    response = await ingest.client.post("/v1/track", json={"userId": "u", "event": "e"}, headers=basic(KEY))
    assert response.status_code == 401 and "secret key" in response.json()["message"]
    assert ingest.publisher.sent == []


async def test_the_segmenter_client_follows_redirects_from_the_email_index():
    ann = email_digest("ann@example.com").hex()
    pages = {
        f"/emails/ws%201/{ann}": {"profile_ids": ["anon-1", "u-1"]},
        "/profiles/ws%201/anon-1": {"profile_id": "anon-1", "merged_into": "u-1"},
        "/profiles/ws%201/u-1": {"profile_id": "u-1", "email": "ann@example.com"},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        body = pages.get(request.url.raw_path.decode())
        return httpx.Response(200, json=body) if body else httpx.Response(404, json={"found": False})

    client = SegmenterProfiles(PrivacySettings(), transport=httpx.MockTransport(answer))
    found = await client.find(Person("ws 1", email="ann@example.com", user_id="u/1"))
    assert found.problem is None and [p["profile_id"] for p in found.profiles] == ["u-1"]

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    unreachable = SegmenterProfiles(PrivacySettings(), transport=httpx.MockTransport(down))
    found = await unreachable.find(Person("ws", user_id="u-1"))
    assert found.profiles == [] and found.problem is not None and "did not answer" in found.problem
