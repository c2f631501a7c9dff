"""Campaign and template names: `^[a-z0-9_]{1,64}$`.

They become Kafka keys (`workspace/kind/name`), file-like identifiers in templates and
metric labels, so the alphabet is small on purpose: no slash, no dot, no unicode look-alike.
"""

from __future__ import annotations

import re

from retarget.ingest.management.errors import ConfigRejected

NAME_PATTERN = r"^[a-z0-9_]{1,64}$"
_NAME = re.compile(NAME_PATTERN)


def checked_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigRejected(
            f"{kind} name {name[:80]!r} is not valid: use 1 to 64 of a-z, 0-9 and _", field="name"
        )
    return name
