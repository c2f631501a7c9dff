"""`.devstack/state.json`: what the stack runs and where, shared by every process.

The CLI, tests and the demo all read and write this one file, sometimes at the same
time (a test starting a service while `status` runs), so every change is a locked
read-modify-write and the file is replaced atomically: readers never see half a JSON.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from retarget.devstack.paths import Layout

State = dict[str, Any]


def _empty() -> State:
    return {"version": 1, "kafka": {}, "postgres": {}, "smtp": {}, "services": {}, "demo": {}}


def _read(path: Path) -> State:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return _empty()
    except json.JSONDecodeError:
        # Only a hand edit can break it (writes are atomic); start over rather than crash.
        return _empty()
    state = _empty()
    state.update(data)
    return state


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.lock_file, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def exclusive_run(layout: Layout, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
    """One `up`/`down` at a time per stack: the Makefile, test fixtures and a shell may all
    run `up` at once, and two of them must not both decide to start the broker."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    with open(layout.run_dir / "updown.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, state: State) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def load_state(layout: Layout | None = None) -> State:
    """The recorded stack: kafka, postgres, smtp, services, demo (all dicts, maybe empty).

    It is what was recorded, not a live check; `retarget devstack status` (or
    retarget.devstack.stack.status()) tells what is actually running.
    """
    layout = layout or Layout.current()
    return _read(layout.state_file)


def update_state(change: Callable[[State], None], layout: Layout | None = None) -> State:
    """Apply `change` to the state under the lock and save it; returns the new state.

    Example: update_state(lambda s: s["demo"].update(write_key="wk_…")).
    """
    layout = layout or Layout.current()
    with _locked(layout):
        state = _read(layout.state_file)
        change(state)
        _write(layout.state_file, state)
        return state


def set_component(name: str, info: dict[str, Any], layout: Layout | None = None) -> None:
    """Replace one component's record (kafka, postgres or smtp)."""
    update_state(lambda s: s.__setitem__(name, info), layout)
