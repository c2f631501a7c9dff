"""Addresses of the stack, and the environment variables that point elsewhere.

Setting RETARGET_KAFKA_BOOTSTRAP, RETARGET_DATABASE_URL or RETARGET_SMTP_URL means "use
this one": `up` then starts nothing for that component, and everything that asks
stack_env() gets the external address. The same names are what the services' settings
read, so `env | grep RETARGET_` is the whole contract between the stack and the code.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from retarget.devstack.paths import HOST, KAFKA_PORT, POSTGRES_PORT, SMTP_PORT

KAFKA_ENV = "RETARGET_KAFKA_BOOTSTRAP"
DATABASE_ENV = "RETARGET_DATABASE_URL"
SMTP_ENV = "RETARGET_SMTP_URL"

LOCAL_KAFKA = f"{HOST}:{KAFKA_PORT}"
LOCAL_DATABASE = f"postgresql://retarget@{HOST}:{POSTGRES_PORT}/retarget"
LOCAL_SMTP = f"smtp://{HOST}:{SMTP_PORT}"
_LOCAL = {KAFKA_ENV: LOCAL_KAFKA, DATABASE_ENV: LOCAL_DATABASE, SMTP_ENV: LOCAL_SMTP}


def override(name: str) -> str | None:
    """The external address the user set for a component, if any.

    Blank counts as unset, and so does the local stack's own address: test fixtures and
    shells export stack_env() into os.environ, and that must not turn the local stack
    into an "external" one that `up` then refuses to start.
    """
    value = os.environ.get(name, "").strip()
    return value if value and value != _LOCAL[name] else None


def kafka_bootstrap() -> str:
    return override(KAFKA_ENV) or LOCAL_KAFKA


def database_url() -> str:
    return override(DATABASE_ENV) or LOCAL_DATABASE


def smtp_url() -> str:
    return override(SMTP_ENV) or LOCAL_SMTP


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """('host', port) of a URL or host:port; the first one of a comma separated list."""
    first = address.split(",")[0].strip()
    parts = urlsplit(first if "//" in first else f"//{first}")
    return parts.hostname or HOST, parts.port or default_port


def stack_env() -> dict[str, str]:
    """RETARGET_KAFKA_BOOTSTRAP, RETARGET_DATABASE_URL and RETARGET_SMTP_URL of the stack.

    Merge it into a child process's environment (services, e2e tests, benchmarks):
        subprocess.Popen(argv, env={**os.environ, **stack_env()})
    """
    return {KAFKA_ENV: kafka_bootstrap(), DATABASE_ENV: database_url(), SMTP_ENV: smtp_url()}
