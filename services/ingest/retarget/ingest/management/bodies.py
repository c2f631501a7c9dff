"""Request bodies of the management API: a JSON object, or YAML with Content-Type
application/yaml (campaign files are YAML), read under ingest's batch size limit.

YAML anchors and aliases are refused (retarget.config.yaml_text, as the CLI reads files).
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from fastapi import Request

from retarget.config.yaml_text import load_yaml
from retarget.ingest.body import read_body
from retarget.ingest.errors import InvalidPayload

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


async def read_object(request: Request, *, limit: int) -> dict[str, Any]:
    """The body as a mapping, or a 400/413 naming the problem."""
    raw = await read_body(request.headers, request.stream(), limit=limit, what="request")
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media_type in YAML_TYPES:
        data = _yaml(raw)
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidPayload(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidPayload("body must be a JSON (or YAML) object")
    return data


def _yaml(raw: bytes) -> Any:
    try:
        return load_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidPayload("YAML body is not UTF-8") from None
    except yaml.YAMLError as exc:
        raise InvalidPayload(f"body is not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes recursively: a few KB of `[[[[…` go past the limit
        raise InvalidPayload("YAML body is nested too deeply") from None
