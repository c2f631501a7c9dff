"""schemathesis against the management routes of ingest's OpenAPI schema, with the
workspace's real admin key, on the real server, PostgreSQL and Kafka: whatever the names,
query strings and bodies, no answer is a 5xx. Bounded by a count of cases per operation,
never by time."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from .conftest import Tenant, ops_url

pytestmark = pytest.mark.integration

EXAMPLES = 15  # per operation


def fuzz(
    schema_url: str, public_url: str, workspace_id: str, admin_key: str
) -> tuple[Counter[int], list[str]]:
    schema = schemathesis.openapi.from_url(schema_url)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/v1/workspaces/"):
            continue

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            case.path_parameters = (case.path_parameters or {}) | {"workspace_id": workspace_id}
            response = case.call(
                base_url=public_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60
            )
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{case.operation.label} → {response.status_code}: {response.text:.300}")

        call()
    return statuses, failures


async def test_no_generated_management_request_gets_a_5xx(
    ingest_url: str, ingest_settings, tenant: Tenant, secret_key
) -> None:
    pytest.importorskip(
        "retarget.config.service", reason="retarget.config's ConfigService (issue #14, core M2)"
    )
    admin = await secret_key(tenant.workspace_id, "admin", "coupons")  # coupons: check and redeem too
    schema_url = f"{ops_url(ingest_settings)}/openapi.json"
    statuses, failures = await asyncio.to_thread(fuzz, schema_url, ingest_url, tenant.workspace_id, admin)
    assert failures == []
    assert statuses[200] > 0 and statuses[422] > 0, statuses
