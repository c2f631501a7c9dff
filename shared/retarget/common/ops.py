"""The operations endpoints of services without an HTTP API of their own (composer, sender):
/healthz (the process is alive), /readyz (its dependencies answer, and the partitions this
process owns, so a person can watch them move between replicas) and /metrics (Prometheus).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

ReadyCheck = Callable[[], Awaitable[dict[str, str]]]
"""Returns problems by dependency name; empty when ready."""
ReadyDetails = Callable[[], dict[str, object]]
"""What /readyz shows beside the problems (e.g. the sender's partitions and limit share)."""
Assignment = Callable[[], Iterable[tuple[str, int]]]
"""The (topic, partition) pairs this process consumes now: a consumer's assignment()."""


def partitions_by_topic(assigned: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in assigned:
        by_topic.setdefault(topic, []).append(partition)
    return {topic: sorted(partitions) for topic, partitions in sorted(by_topic.items())}


def metrics_response() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def build_ops_app(
    ready_check: ReadyCheck, assignment: Assignment | None = None, details: ReadyDetails | None = None
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        problems = await ready_check()
        status = 503 if problems else 200
        body: dict[str, object] = {"ready": not problems, "problems": problems}
        if assignment is not None:
            body["partitions"] = partitions_by_topic(assignment())
        if details is not None:
            body.update(details())
        return web.json_response(body, status=status)

    async def metrics(_: web.Request) -> web.Response:
        body, content_type = metrics_response()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_ops_server(
    host: str,
    port: int,
    ready_check: ReadyCheck,
    assignment: Assignment | None = None,
    details: ReadyDetails | None = None,
) -> web.AppRunner:
    runner = web.AppRunner(build_ops_app(ready_check, assignment, details), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
