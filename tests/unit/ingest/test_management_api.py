"""The management API through the ASGI app, with an in-memory ConfigService (the store's
own rules are retarget.config's; the real thing runs in tests/integration/ingest/)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from retarget.common.testing import FakeClock
from retarget.config.validation import ConfigInvalid
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.main import create_app
from retarget.ingest.management.context import Management
from retarget.ingest.settings import IngestSettings
from retarget.ingest.testing import FakeConfigStore, FakeKeys, FakePublisher, FakeSecretKeys

ADMIN, OTHER_ADMIN, PRIVACY, WRITE = "rt_sk_admin_ws1", "rt_sk_admin_ws2", "rt_sk_privacy_ws1", "wk_public"
BUNDLED = {
    "campaign": {"abandoned_cart": {"name": "abandoned_cart", "wait": "1h", "template": "cart"}},
    "template": {"cart": {"subject": "Your cart", "html": "<p>hi</p>", "text": "hi"}},
}
CAMPAIGNS = "/v1/workspaces/ws1/campaigns"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def checked(kind: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Stands in for retarget.config.validation: a wait must be a duration like "2h"."""
    if kind == "campaign" and not str(body.get("wait", "1h")).endswith(("m", "h", "d")):
        raise ConfigInvalid(f"campaign {name}: field wait: not a duration like 2h")
    return dict(body)


class FakeDb:
    """config_current from the fake store, each version published at offset 10 × version;
    config_applied with two instances: one applied the feed to offset 15, one to 25."""

    def __init__(self, store: FakeConfigStore) -> None:
        self.store = store

    async def run(self, what: str, query: Any) -> Any:
        return await query(self)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        if "config_current" in sql:
            current = await self.store.current(args[0])
            return [
                {"kind": c.kind, "name": c.name, "version": c.version, "feed_offset": 10 * c.version}
                for c in current
            ]
        applied_at = datetime(2026, 11, 29, tzinfo=UTC)
        return [
            {"service": "composer", "instance": "c-1", "feed_offset": 15, "applied_at": applied_at},
            {"service": "segmenter", "instance": "s-1", "feed_offset": 25, "applied_at": applied_at},
        ]


@dataclass
class Harness:
    client: httpx.AsyncClient
    store: FakeConfigStore
    rendered: list[tuple[str, str, dict[str, Any], Any]]


@pytest.fixture
async def api() -> AsyncIterator[Harness]:
    settings = IngestSettings(topic_prefix="unitm", max_batch_bytes=4096)
    store = FakeConfigStore(validate=checked)
    rendered: list[tuple[str, str, dict[str, Any], Any]] = []

    async def render(ws: str, name: str, body: Mapping[str, Any], profile: Any) -> dict[str, Any]:
        rendered.append((ws, name, dict(body), profile))
        return {"subject": f"[{ws}] {body['subject']}", "html": body.get("html"), "text": body.get("text")}

    async def profile(ws: str, profile_id: str) -> Mapping[str, Any] | None:
        return {"profile_id": profile_id, "traits": {"first_name": "Ann"}} if profile_id == "u-1" else None

    services = bootstrap(
        settings,
        publisher=FakePublisher(),
        key_lookup=FakeKeys({WRITE: "ws1"}),
        secret_key_lookup=FakeSecretKeys(
            {ADMIN: ("ws1", {"admin"}), OTHER_ADMIN: ("ws2", {"admin"}), PRIVACY: ("ws1", {"privacy"})}
        ),
        management=Management(
            store,
            lambda kind: BUNDLED[kind],
            render,
            profile,
            db=FakeDb(store),
            max_body_bytes=4096,
        ),
        clock=FakeClock(),
        monotonic=lambda: 0.0,
    )
    transport = httpx.ASGITransport(app=create_app(settings, services=services))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://ingest", headers=auth(ADMIN)
    ) as client:
        yield Harness(client, store, rendered)


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ("rt_sk_unknown", 401, "unauthorized"),
        (WRITE, 403, "secret_key_required"),
        (PRIVACY, 403, "insufficient_scope"),
        (OTHER_ADMIN, 403, "wrong_workspace"),
    ],
)
async def test_only_the_workspaces_admin_key_passes_and_is_judged_before_the_body(api, key, status, code):
    headers = {"Authorization": ""} if key is None else auth(key)
    for method, path in [
        ("GET", CAMPAIGNS),
        ("PUT", f"{CAMPAIGNS}/new_one"),
        ("DELETE", f"{CAMPAIGNS}/abandoned_cart"),
        ("POST", "/v1/workspaces/ws1/templates/cart/preview"),
        ("PUT", "/v1/workspaces/ws1/policy"),
        ("GET", "/v1/workspaces/ws1/suppressions"),
    ]:
        response = await api.client.request(method, path, content=b"{not json", headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code), (method, path)
    assert api.store.versions == []


async def test_another_workspaces_key_gets_the_same_answer_whether_or_not_the_object_exists(api):
    exists = await api.client.get(f"{CAMPAIGNS}/abandoned_cart", headers=auth(OTHER_ADMIN))
    missing = await api.client.get(f"{CAMPAIGNS}/nothing_here", headers=auth(OTHER_ADMIN))
    assert exists.status_code == missing.status_code == 403
    assert exists.json() == missing.json()


async def test_campaign_round_trip_with_versions_history_and_inherited_defaults(api):
    listed = (await api.client.get(CAMPAIGNS)).json()["campaigns"]
    assert [(c["name"], c["source"], c["version"], c["enabled"]) for c in listed] == [
        ("abandoned_cart", "default", None, True)
    ]
    first = await api.client.put(f"{CAMPAIGNS}/winback", json={"name": "winback", "wait": "2d"})
    assert first.status_code == 200 and first.json()["stored"] is True
    yaml_body = b"name: winback\nwait: 3d\n"
    second = await api.client.put(
        f"{CAMPAIGNS}/winback", content=yaml_body, headers={"Content-Type": "application/yaml"}
    )
    assert second.json()["body"] == {"name": "winback", "wait": "3d"}
    assert second.json()["version"] > first.json()["version"]
    assert second.json()["author"].startswith("sk:rt_sk_admin")

    one = (await api.client.get(f"{CAMPAIGNS}/winback", params={"history": "true"})).json()
    assert one["source"] == "workspace" and one["body"]["wait"] == "3d"
    assert [v["body"]["wait"] for v in one["history"]] == ["3d", "2d"]

    disabled = await api.client.post(f"{CAMPAIGNS}/abandoned_cart/disable")
    assert disabled.status_code == 200 and disabled.json()["body"]["template"] == "cart"  # the bundled body
    listed = {c["name"]: c for c in (await api.client.get(CAMPAIGNS)).json()["campaigns"]}
    assert (listed["abandoned_cart"]["source"], listed["abandoned_cart"]["enabled"]) == ("workspace", False)
    assert (await api.client.post(f"{CAMPAIGNS}/abandoned_cart/enable")).json()["body"]["enabled"] is True

    assert (await api.client.delete(f"{CAMPAIGNS}/abandoned_cart")).json()["deleted"] is True
    names = [c["name"] for c in (await api.client.get(CAMPAIGNS)).json()["campaigns"]]
    assert names == ["winback"]  # the deletion hides the bundled campaign of that name
    assert (await api.client.get(f"{CAMPAIGNS}/abandoned_cart")).status_code == 404
    gone = (await api.client.get(f"{CAMPAIGNS}/abandoned_cart", params={"history": "true"})).json()
    assert gone["deleted"] is True and [v["deleted"] for v in gone["history"]] == [True, False, False]
    assert (await api.client.delete(f"{CAMPAIGNS}/abandoned_cart")).status_code == 404


async def test_an_invalid_campaign_is_a_422_naming_the_field_and_nothing_is_stored(api):
    for path in (f"{CAMPAIGNS}/winback", f"{CAMPAIGNS}/winback:validate"):
        response = await api.client.request(
            "PUT" if path.endswith("winback") else "POST", path, json={"name": "winback", "wait": "soon"}
        )
        assert response.status_code == 422, response.text
        assert (response.json()["code"], response.json()["field"]) == ("invalid_config", "wait")
        assert "campaign winback: field wait" in response.json()["message"]
    assert api.store.versions == []


async def test_validate_and_dry_run_store_nothing(api):
    valid = await api.client.post(f"{CAMPAIGNS}/winback:validate", json={"name": "winback", "wait": "2d"})
    dry = await api.client.put(f"{CAMPAIGNS}/winback", params={"dry_run": "true"}, json={"wait": "2d"})
    assert (valid.json()["valid"], valid.json()["stored"], dry.json()["stored"]) == (True, False, False)
    assert api.store.versions == []


@pytest.mark.parametrize("name", ["Winback", "win-back", "café", "a" * 65, "a.b", "%20", "a%0A"])
async def test_names_outside_the_alphabet_are_refused_naming_the_field(api, name):
    response = await api.client.put(f"{CAMPAIGNS}/{name}", json={"wait": "2d"})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "name"
    assert api.store.versions == []


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"a: &x [1]\nb: *x\n", "application/yaml", 400),  # aliases: the "billion laughs" expansion
        (b"a: [unclosed", "application/yaml", 400),
        (b"\xff\xfe", "application/yaml", 400),
        (b"[" * 1500 + b"]" * 1500, "application/yaml", 400),  # nesting past Python's recursion limit
        (b"a: " + b"{b: " * 700 + b"1" + b"}" * 700, "application/yaml", 400),
        (b'{"wait": "' + b"x" * 5000 + b'"}', "application/json", 413),
    ],
)
async def test_bad_bodies_are_4xx_and_store_nothing(api, content, content_type, status):
    response = await api.client.put(
        f"{CAMPAIGNS}/winback", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    assert api.store.versions == []


async def test_a_store_that_is_away_is_a_503_with_retry_after(api):
    api.store.down = True
    response = await api.client.get(CAMPAIGNS)
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1


async def test_preview_renders_the_stored_template_or_a_draft_for_a_sample_or_a_real_profile(api):
    stored = await api.client.post("/v1/workspaces/ws1/templates/cart/preview")
    assert stored.json() == {"subject": "[ws1] Your cart", "html": "<p>hi</p>", "text": "hi"}
    draft = {"subject": "Draft {{ x }}", "html": None, "text": "t"}
    for_profile = await api.client.post(
        "/v1/workspaces/ws1/templates/cart/preview", json={"draft": draft, "profile_id": "u-1"}
    )
    assert for_profile.json()["subject"] == "[ws1] Draft {{ x }}"
    assert api.rendered[0][3] is None and api.rendered[1][3]["profile_id"] == "u-1"
    missing = await api.client.post(
        "/v1/workspaces/ws1/templates/cart/preview", json={"profile_id": "nobody"}
    )
    assert missing.status_code == 404
    unknown = await api.client.post("/v1/workspaces/ws1/templates/nothing/preview")
    assert unknown.status_code == 404
    assert api.store.versions == []  # a preview stores nothing


async def test_policy_and_identity_are_one_object_each(api):
    assert (await api.client.get("/v1/workspaces/ws1/policy")).json()["source"] == "default"
    put = await api.client.put("/v1/workspaces/ws1/policy", json={"consent_mode": "opt_in"})
    assert put.status_code == 200 and put.json()["name"] == ""
    got = (await api.client.get("/v1/workspaces/ws1/policy")).json()
    assert (got["source"], got["body"]) == ("workspace", {"consent_mode": "opt_in"})
    dry = await api.client.put(
        "/v1/workspaces/ws1/identity", params={"dry_run": "1"}, json={"from_name": "S"}
    )
    assert dry.json()["stored"] is False
    assert (await api.client.get("/v1/workspaces/ws1/identity")).json()["body"] is None


async def test_the_openapi_document_lists_the_management_routes(api):
    paths = create_app(IngestSettings()).openapi()["paths"]
    for path in (
        "/v1/workspaces/{workspace_id}/campaigns",
        "/v1/workspaces/{workspace_id}/campaigns/{name}",
        "/v1/workspaces/{workspace_id}/campaigns/{name}:validate",
        "/v1/workspaces/{workspace_id}/campaigns/{name}/enable",
        "/v1/workspaces/{workspace_id}/templates/{name}/preview",
        "/v1/workspaces/{workspace_id}/policy",
        "/v1/workspaces/{workspace_id}/identity",
        "/v1/workspaces/{workspace_id}/suppressions",
    ):
        assert path in paths, path


async def test_live_says_which_instance_applied_the_record_of_each_current_version(api):
    await api.client.put(f"{CAMPAIGNS}/one", json={"wait": "1h"})  # version 1, at offset 10 in the feed
    await api.client.put(f"{CAMPAIGNS}/two", json={"wait": "1h"})  # version 2, at offset 20
    live = (await api.client.get("/v1/workspaces/ws1/config/live")).json()["instances"]
    by_instance = {i["instance"]: {v["name"]: v["live"] for v in i["versions"]} for i in live}
    assert by_instance == {"c-1": {"one": True, "two": False}, "s-1": {"one": True, "two": True}}
    assert [i["all_live"] for i in live] == [False, True]


async def test_a_preview_draft_that_is_not_an_object_is_a_400_naming_it(api):
    response = await api.client.post("/v1/workspaces/ws1/templates/cart/preview", json={"draft": "<p>x</p>"})
    assert (response.status_code, response.json()["field"]) == (400, "draft")
    assert api.rendered == []


async def test_the_author_recorded_is_the_keys_shown_prefix_never_the_key(api):
    change = (await api.client.put(f"{CAMPAIGNS}/winback", json={"wait": "2d"})).json()
    assert change["author"] == f"sk:{ADMIN[:14]}…" and ADMIN not in change["author"]


async def test_each_admin_key_has_the_privacy_routes_rate_bucket(api):
    burst = IngestSettings().rate_limit_secret_key_burst  # no time passes here: the bucket never refills
    answers = [(await api.client.get("/v1/workspaces/ws1/policy")).status_code for _ in range(burst + 1)]
    assert answers[:burst] == [200] * burst
    assert answers[burst] == 429


@pytest.mark.parametrize("profile_id", ["", "x" * 257, 12, ["u-1"]])
async def test_a_preview_profile_id_outside_1_to_256_characters_is_a_400_before_any_lookup(api, profile_id):
    response = await api.client.post(
        "/v1/workspaces/ws1/templates/cart/preview", json={"profile_id": profile_id}
    )
    assert response.status_code == 400 and response.json()["field"] == "profile_id", response.text
    assert api.rendered == []


def test_a_version_not_yet_published_is_live_nowhere():
    from retarget.ingest.management.live import is_live

    assert not is_live(None, 0) and not is_live(None, 10**9)
    assert is_live(5, 5) and not is_live(6, 5)
