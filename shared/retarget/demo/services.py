"""Start the four services (and ingest's unsubscribe mailbox and the demo shop) as separate
processes on fixed local ports, recorded in the stack's state."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from retarget.demo.replicas import is_replica_of, replica_plans
from retarget.devstack.paths import devstack_dir
from retarget.devstack.services import start_service, stop_service
from retarget.devstack.state import load_state


@dataclass(frozen=True)
class ServicePlan:
    name: str
    port: int
    port_var: str  # the settings field that binds the service's HTTP or ops server
    module: str = ""  # python -m retarget.<module>; default: the name
    env: tuple[tuple[str, str], ...] = ()
    metrics_port: int = 0  # where its /metrics is, when not on `port`
    metrics_port_var: str = ""  # the settings field that binds `metrics_port`, when it is its own
    metrics: bool = True  # False: no /metrics for the funnel to read (the demo shop)


#: where the demo's mail clients send mailto: unsubscribes
MAILBOX_SMTP_PORT = 18025
INGEST_OPS_PORT = 18085
SHOP_PORT = 18086
SHOP_URL = f"http://127.0.0.1:{SHOP_PORT}"

PLAN = [
    # ingest's /metrics and /readyz are on its ops port: the public one serves only the API
    ServicePlan(
        "ingest",
        18080,
        "RETARGET_PORT",
        metrics_port=INGEST_OPS_PORT,
        metrics_port_var="RETARGET_INGEST_OPS_PORT",
    ),
    ServicePlan("segmenter", 18081, "RETARGET_WEB_PORT"),
    ServicePlan("composer", 18082, "RETARGET_OPS_PORT"),
    # The simulated visitors give 2% bounce addresses (traffic.py), on the pause threshold of the
    # reputation guard: the demo shows bounces in its funnel, not a paused workspace.
    ServicePlan(
        "sender", 18083, "RETARGET_OPS_PORT", env=(("RETARGET_REPUTATION_HARD_BOUNCE_PAUSE", "0.1"),)
    ),
    ServicePlan(
        "ingest-mailbox",
        18084,
        "RETARGET_MAILBOX_OPS_PORT",
        module="ingest.mailbox_server",
        env=(("RETARGET_MAILBOX_PORT", str(MAILBOX_SMTP_PORT)),),
    ),
    # the demo shop's pages, tracked by the browser SDKs (its write key and ingest URL: run.py)
    ServicePlan("shop", SHOP_PORT, "RETARGET_SHOP_PORT", module="demo.shop", metrics=False),
]


def start_all(env: dict[str, str], replicas: Mapping[str, int] | None = None) -> list[dict]:
    """Start whatever is not running yet (`replicas`: processes per service, default 1 each),
    stop replicas beyond those counts; return the service records."""
    records = []
    for service in PLAN:
        count = (replicas or {}).get(service.name, 1)
        for plan in replica_plans(service, count):
            records.append(_start(plan, env))
        _stop_extra_replicas(service.name, count)
    return records


def _start(plan: ServicePlan, env: dict[str, str]) -> dict:
    service_env = {**env, **dict(plan.env), plan.port_var: str(plan.port)}
    if plan.metrics_port_var:
        service_env[plan.metrics_port_var] = str(plan.metrics_port)
    if (plan.module or plan.name) == "segmenter":  # each replica its own table store
        service_env["RETARGET_DATA_DIR"] = str(devstack_dir() / plan.name)
    smtp = f"  smtp://127.0.0.1:{MAILBOX_SMTP_PORT}" if plan.name == "ingest-mailbox" else ""
    print(f"    {plan.name:<10} http://127.0.0.1:{plan.port}{smtp}", flush=True)
    return start_service(
        plan.name,
        [sys.executable, "-m", f"retarget.{plan.module or plan.name}"],
        http_port=plan.port,
        metrics_port=(plan.metrics_port or plan.port) if plan.metrics else None,
        env=service_env,
        timeout=60,
    )


def _stop_extra_replicas(service: str, count: int) -> None:
    for name in running_replicas(service):
        index = name.rpartition("-")[2]
        if name != service and int(index) > count:
            print(f"    {stop_service(name)}", flush=True)


def running_replicas(service: str) -> list[str]:
    """The recorded processes of `service`: itself and its replicas (`sender-2`, …)."""
    return sorted(name for name in load_state().get("services", {}) if is_replica_of(name, service))
