"""up / down / status of the whole stack, component by component.

`up` starts the slow part first: the Kafka JVM boots in the background while
PostgreSQL and the SMTP capture start, then we wait for the broker. Every component
already running is left alone, so `up` is safe to repeat. Components whose address is
overridden (RETARGET_*) are neither started nor stopped.
"""

from __future__ import annotations

import time
from typing import Any

from retarget.devstack import kafka, postgres, procs, prometheus, smtp
from retarget.devstack.env import (
    DATABASE_ENV,
    KAFKA_ENV,
    SMTP_ENV,
    database_url,
    host_port,
    kafka_bootstrap,
    override,
    smtp_url,
)
from retarget.devstack.errors import DevstackError
from retarget.devstack.kafka_config import KafkaNode
from retarget.devstack.paths import HOST, KAFKA_PORT, POSTGRES_PORT, SMTP_PORT, Layout
from retarget.devstack.progress import say
from retarget.devstack.services import list_services, stop_all_services
from retarget.devstack.state import exclusive_run, load_state, set_component


def _took(started: float) -> str:
    return f"{time.monotonic() - started:.1f}s"


def _check_ports(layout: Layout, kafka_nodes: list[KafkaNode]) -> None:
    """Every port conflict up front, so a taken port never leaves a half-started stack."""
    if not override(KAFKA_ENV):
        running, pids = kafka.running_nodes(layout)
        if any(pids) and len(running) != len(kafka_nodes):
            raise DevstackError(
                f"the local Kafka runs {len(running)} broker(s), not {len(kafka_nodes)}",
                f"`retarget devstack down` first, or `retarget devstack up --brokers {len(running)}`",
            )
        for node in kafka_nodes:
            if kafka.running_pid(node) is None:
                for port in (node.port, node.controller_port):
                    procs.ensure_port_free(HOST, port, "Kafka", KAFKA_ENV)
    wanted = [
        (DATABASE_ENV, postgres.running_pid, "PostgreSQL", (POSTGRES_PORT,)),
        (SMTP_ENV, smtp.running_pid, "the SMTP capture", (SMTP_PORT,)),
    ]
    for env, running_pid, component, ports in wanted:
        if not override(env) and running_pid(layout) is None:
            for port in ports:
                procs.ensure_port_free(HOST, port, component, env)


def _waiting() -> None:
    say("devstack: another `retarget devstack up/down` is running; waiting for it to finish…")


async def up(layout: Layout | None = None, *, brokers: int | None = None) -> dict[str, Any]:
    """Start whatever is not running yet; returns status() when all is ready.

    brokers: 1 (a lone Kafka node) or 3 (a cluster: topics get 3 replicas, min.insync 2);
    None keeps the shape that runs (so test fixtures' `up` works on either), else 1.
    """
    layout = layout or Layout.current()
    layout.ensure()
    with exclusive_run(layout, _waiting):
        return await _up(layout, brokers)


async def _up(layout: Layout, brokers: int | None) -> dict[str, Any]:
    t0 = time.monotonic()
    if brokers is None:
        running, pids = kafka.running_nodes(layout)
        brokers = len(running) if any(pids) else 1
    kafka_nodes = kafka.devstack_nodes(layout, brokers)
    _check_ports(layout, kafka_nodes)

    kafka_pids: list[int] = []
    if override(KAFKA_ENV):
        say(f"kafka: using {kafka_bootstrap()} ({KAFKA_ENV} is set)")
    else:
        for node, (pid, new) in zip(kafka_nodes, kafka.start_all(kafka_nodes), strict=True):
            kafka_pids.append(pid)
            name = "kafka" if brokers == 1 else f"kafka node {node.node_id} ({node.address})"
            say(f"{name}: {'starting' if new else 'already running'} (pid {pid})")
    set_component("kafka", _kafka_record(layout, kafka_nodes, list(kafka_pids)))

    if override(DATABASE_ENV):
        say(f"postgres: using {database_url()} ({DATABASE_ENV} is set)")
        pg_pid = None
    else:
        started = time.monotonic()
        pg_pid, pg_new = postgres.start(layout)
        created = await postgres.ensure_database()
        note = " (created role and database retarget)" if created else ""
        say(
            f"postgres: {'started in ' + _took(started) if pg_new else 'already running'} (pid {pg_pid}){note}"
        )
    set_component("postgres", _postgres_record(layout, pg_pid))

    if override(SMTP_ENV):
        say(f"smtp: using {smtp_url()} ({SMTP_ENV} is set)")
        smtp_pid = None
    else:
        started = time.monotonic()
        smtp_pid, smtp_new = await smtp.start(layout)
        say(f"smtp: {'started in ' + _took(started) if smtp_new else 'already running'} (pid {smtp_pid})")
    set_component("smtp", _smtp_record(layout, smtp_pid))

    started = time.monotonic()
    prom_pid, prom_new = await prometheus.start(layout)
    if prom_pid is None:
        say("prometheus: not installed (Debian package `prometheus`, or `make system-deps`); skipped")
    else:
        say(
            f"prometheus: {'started in ' + _took(started) if prom_new else 'already running'} (pid {prom_pid})"
        )

    if kafka_pids:
        await kafka.wait_ready(kafka_nodes, kafka_pids)
        say(f"kafka: ready on {kafka.bootstrap_of(kafka_nodes)} ({_took(t0)} since up began)")
    say(f"devstack: up in {_took(t0)}")
    return status(layout)


def down(layout: Layout | None = None) -> list[str]:
    """Stop services, then the capture, Kafka and PostgreSQL (data is kept)."""
    layout = layout or Layout.current()
    with exclusive_run(layout, _waiting):
        messages = stop_all_services(layout)
        for message in messages:
            say(message)
        for stop in (prometheus.stop, smtp.stop, kafka.stop, postgres.stop):
            messages.append(stop(layout))
            say(messages[-1])
    return messages


def _kafka_record(layout: Layout, nodes: list[KafkaNode], pids: list[int | None]) -> dict[str, Any]:
    """The Kafka component; `brokers` is what stack_env() reads to point clients at all nodes."""
    managed = not override(KAFKA_ENV)
    if not managed:
        return {"bootstrap": kafka_bootstrap(), "managed": False, "pid": None, "log": None, "brokers": 1}
    return {
        "bootstrap": kafka.bootstrap_of(nodes),
        "managed": True,
        "pid": next((pid for pid in pids if pid), None),
        "log": str(nodes[0].layout.kafka_log),
        "brokers": len(nodes),
        "nodes": [
            {"node_id": node.node_id, "address": node.address, "pid": pid, "log": str(node.layout.kafka_log)}
            for node, pid in zip(nodes, pids, strict=True)
        ]
        if len(nodes) > 1
        else [],
    }


def _postgres_record(layout: Layout, pid: int | None) -> dict[str, Any]:
    managed = not override(DATABASE_ENV)
    return {
        "url": database_url(),
        "managed": managed,
        "pid": pid,
        "data_dir": str(layout.pg_data) if managed else None,
        "log": str(layout.pg_log) if managed else None,
    }


def _smtp_record(layout: Layout, pid: int | None) -> dict[str, Any]:
    managed = not override(SMTP_ENV)
    host, port = host_port(smtp_url(), SMTP_PORT)
    return {
        "host": host,
        "port": port,
        "url": smtp_url(),
        "capture_dir": str(layout.mail_dir) if managed else None,
        "managed": managed,
        "pid": pid,
        "log": str(layout.smtp_log) if managed else None,
    }


def status(layout: Layout | None = None) -> dict[str, Any]:
    """Live view: addresses plus whether each component answers right now."""
    layout = layout or Layout.current()
    kafka_nodes, kafka_pids = kafka.running_nodes(layout)
    if override(KAFKA_ENV):
        kafka_pids = [None] * len(kafka_nodes)
    kafka_pid = next((pid for pid in kafka_pids if pid), None)
    pg_pid = None if override(DATABASE_ENV) else postgres.running_pid(layout)
    smtp_pid = None if override(SMTP_ENV) else smtp.running_pid(layout)
    result: dict[str, Any] = {
        "devstack_dir": str(layout.root),
        "kafka": _kafka_record(layout, kafka_nodes, kafka_pids),
        "postgres": _postgres_record(layout, pg_pid),
        "smtp": _smtp_record(layout, smtp_pid),
        "prometheus": {
            "url": prometheus.URL,
            "pid": prometheus.running_pid(layout),
            "running": prometheus.running_pid(layout) is not None,
            "managed": True,
            "log": str(layout.prometheus_log),
        },
        "services": list_services(layout),
        "demo": load_state(layout).get("demo", {}),
    }
    checks = {
        "kafka": (kafka_bootstrap(), KAFKA_PORT, kafka_pid),
        "postgres": (database_url(), POSTGRES_PORT, pg_pid),
        "smtp": (smtp_url(), SMTP_PORT, smtp_pid),
    }
    for name, (address, default_port, pid) in checks.items():
        host, port = host_port(address, default_port)
        # Managed: our process must exist and listen. External: it must accept connections.
        managed = result[name]["managed"]
        result[name]["running"] = (pid is not None or not managed) and procs.port_open(host, port)
    for node_info in result["kafka"].get("nodes", []):
        node_info["running"] = node_info["pid"] is not None and procs.port_open(
            *host_port(node_info["address"], 0)
        )
    return result
