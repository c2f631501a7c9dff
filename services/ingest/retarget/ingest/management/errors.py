"""The management API's own answers (the shape is ingest's: {"success", "code", "message", …})."""

from __future__ import annotations

import re
from typing import Any

from retarget.ingest.errors import IngestError

_FIELD = re.compile(r": field ([A-Za-z0-9_.\[\]]+):")


class ConfigRejected(IngestError):
    """A body or a name the configuration rules refuse; nothing was stored."""

    status = 422
    code = "invalid_config"


class ObjectNotFound(IngestError):
    status = 404
    code = "not_found"


class OtherWorkspace(IngestError):
    """The key is another workspace's: answered without looking anything up, so the answer
    says nothing about what exists in the workspace of the path."""

    status = 403
    code = "wrong_workspace"


class SuppressionProtected(IngestError):
    status = 409
    code = "suppression_protected"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return super().body() | {"reason": self.reason}


def rejected(exc: ValueError) -> ConfigRejected:
    """ConfigInvalid ("campaign x: field wait: …") as a 422 that also names the field."""
    message = str(exc)
    match = _FIELD.search(message)
    return ConfigRejected(message, field=match.group(1) if match else None)
