"""The local stack: Kafka, PostgreSQL and an SMTP capture on 127.0.0.1, no Docker.

`retarget devstack up|down|status|fetch-kafka` drives it (see retarget.cli.devstack).
Other code (tests, benchmarks, the demo) reads the running stack through the small
API re-exported here; everything else in the package is an implementation detail.
"""

from __future__ import annotations

from retarget.devstack.env import stack_env
from retarget.devstack.errors import DevstackError
from retarget.devstack.state import load_state, update_state

__all__ = ["DevstackError", "load_state", "stack_env", "update_state"]
