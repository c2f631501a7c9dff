"""Hostile experiment fields through the management API: every one a 422 naming the field (or
accepted when harmless), never a 5xx, and nothing stored for a refused body."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration

HOSTILE = [
    ({"variants": [{"name": "a", "weight": "inf"}]}, 422),
    ({"variants": [{"name": "a", "weight": "NaN"}]}, 422),
    ({"variants": [{"name": "a", "weight": 1e308}, {"name": "b", "weight": 1e308}]}, 200),
    ({"variants": [{"name": "a", "weight": 0}]}, 422),
    ({"variants": [{"name": f"v{i}", "weight": 1} for i in range(100)]}, 422),
    ({"variants": [{"name": "holdout", "weight": 1}]}, 422),
    ({"variants": [{"name": "global_holdout", "weight": 1}]}, 422),
    ({"variants": [{"name": "_other", "weight": 1}]}, 422),
    ({"variants": [{"name": "default", "weight": 1}]}, 200),
    (
        {"variants": [{"name": "a", "weight": 1, "subject": "{{ ''.__class__ }}"}]},
        200,
    ),  # the sandbox refuses at render
    ({"variants": [{"name": "a", "weight": 1, "subject": "Hi {% if %}"}]}, 422),
    ({"variants": [{"name": "a", "weight": 1, "subject": "x" * 301}]}, 422),
    ({"variants": [{"name": "a", "weight": 1, "subject": "a\r\nBcc: x@evil.example"}]}, 422),
    ({"variants": [{"name": "a", "weight": 1, "template": "../../etc/passwd"}]}, 422),
    (
        {"variants": [{"name": "a", "weight": 1, "incentive": {"kind": "percent_off", "value": 1e308}}]},
        200,
    ),  # free-form like the campaign's own incentive (only a coupon is checked)
    ({"variants": {"name": "a"}}, 422),
    ({"variants": [[[[[[[[[[[]]]]]]]]]]]}, 422),
    ({"holdout": "0%"}, 200),
    ({"holdout": "50%"}, 200),
    ({"holdout": "51%"}, 422),
    ({"holdout": "10"}, 422),
    ({"holdout": 10}, 422),
    ({"holdout": "NaN%"}, 422),
    ({"holdout": "-1%"}, 422),
    ({"holdout": True}, 422),
]


@pytest.mark.parametrize(("fields", "status"), HOSTILE)
async def test_hostile_experiment_fields_are_a_clear_answer(
    ingest_url, tenant, secret_key, fields, status
) -> None:
    campaigns = f"/v1/workspaces/{tenant.workspace_id}/campaigns"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as client:
        client.headers.update({"Authorization": f"Bearer {await secret_key(tenant.workspace_id, 'admin')}"})
        bundled = (await client.get(f"{campaigns}/abandoned_cart")).json()["body"]
        answer = await client.put(f"{campaigns}/ab_test", json=bundled | {"name": "ab_test", **fields})
        assert answer.status_code == status, answer.text
        if status == 422:
            assert answer.json()["code"] == "invalid_config"
            assert answer.json()["field"].split(".")[0] in fields, answer.json()
            assert (await client.get(f"{campaigns}/ab_test")).status_code == 404
