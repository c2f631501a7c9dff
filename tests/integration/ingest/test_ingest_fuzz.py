"""schemathesis against ingest's own OpenAPI schema, on the real server, Kafka and PostgreSQL:
bodies generated from the schema (valid shapes, and shapes that break it) with a real write
key, sent to the public port. No answer may be a 5xx.

The schema is read where operators read it (the ops port); requests go to the public port.
The number of cases is bounded (EXAMPLES per operation), not the time, so a loaded machine
only makes it slower. schemathesis is synchronous (requests), so it runs in a thread while
the server runs on this event loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .conftest import Tenant, ops_url

pytestmark = pytest.mark.integration

EXAMPLES = 25  # per operation; 16 event routes (long, short, batch, import, b) + 2 privacy routes


def fuzz(schema_url: str, public_url: str, write_key: str) -> tuple[Counter[int], list[str]]:
    """(answers by status, descriptions of the ≥ 500 answers)."""
    schema = schemathesis.openapi.from_url(schema_url)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/v1/"):
            continue  # the ops routes are not served on the public port

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            database=None,
            # the same cases every run: an unseeded run once drew no acceptable body in 95 tries
            # and failed the "some were accepted" check below, which is about the generator's luck
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), with_key=st.booleans() | st.just(True))
        def call(case: schemathesis.Case, with_key: bool) -> None:
            response = case.call(base_url=public_url, auth=(write_key, "") if with_key else None, timeout=30)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.operation.label} → {response.status_code}: {case.body!r:.300} {response.text:.300}"
                )

        call()
    return statuses, failures


async def test_no_generated_request_gets_a_5xx(ingest_url: str, ingest_settings, tenant: Tenant) -> None:
    schema_url = f"{ops_url(ingest_settings)}/openapi.json"
    statuses, failures = await asyncio.to_thread(fuzz, schema_url, ingest_url, tenant.write_key)
    assert failures == []
    # the event routes were exercised, with bodies good enough to be accepted and bad enough not to
    assert statuses.total() >= 7 * EXAMPLES // 2 and statuses[200] > 0 and statuses[400] > 0, statuses
