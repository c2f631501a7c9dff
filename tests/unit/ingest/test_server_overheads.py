"""Per-request work the server must not do: an access log over the JSON logs, and FastAPI's
OpenTelemetry look-ups (both were found by profiling /v1/track under load)."""

from __future__ import annotations

import base64
import logging
import socket

import httpx
import pytest
import uvicorn
from opentelemetry import trace

from retarget.common.testing import FakeClock
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.main import create_app
from retarget.ingest.server import bind_sockets, uvicorn_options
from retarget.ingest.settings import IngestSettings
from retarget.ingest.testing import FakeKeys, FakePublisher

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_binding_the_ops_socket_installs_no_access_log_or_plain_text_handlers() -> None:
    for name in UVICORN_LOGGERS:
        logging.getLogger(name).handlers = []
    settings = IngestSettings(http_host="127.0.0.1", port=free_port(), ingest_ops_port=free_port())
    config = uvicorn.Config(lambda: None, **uvicorn_options(settings))  # type: ignore[arg-type]
    sockets = bind_sockets(config, settings)
    try:
        assert len(sockets) == 2
        # uvicorn logs through the root logger's JSON handler; its access logger is silent
        assert {name: logging.getLogger(name).handlers for name in UVICORN_LOGGERS} == {
            name: [] for name in UVICORN_LOGGERS
        }
        assert not logging.getLogger("uvicorn.access").hasHandlers()
    finally:
        for sock in sockets:
            sock.close()


async def test_a_tracked_event_costs_no_opentelemetry_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = 0
    real = trace.get_tracer_provider

    def counted() -> trace.TracerProvider:
        nonlocal lookups
        lookups += 1
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counted)
    settings = IngestSettings(topic_prefix="unit")
    publisher = FakePublisher()
    services = bootstrap(
        settings, publisher=publisher, key_lookup=FakeKeys({"wk_k": "ws1"}), clock=FakeClock()
    )
    auth = {"Authorization": "Basic " + base64.b64encode(b"wk_k:").decode()}
    transport = httpx.ASGITransport(app=create_app(settings, services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        response = await client.post("/v1/track", json={"userId": "u1", "event": "Viewed"}, headers=auth)
    assert response.status_code == 200
    assert len(publisher.sent) == 1
    assert lookups == 0
