"""The Segment API's request bodies in the OpenAPI schema (served on the ops port).

The /v1 event routes are plain Starlette routes (see routes/tracking.py), which FastAPI
leaves out of its schema; this adds them, with the body schema generated from the same
msgspec structs that decode them, so clients and fuzzers (schemathesis) see what is
accepted. The schema describes the shape; the door's other rules (limits.py) are in the
descriptions.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI

from retarget.ingest.api.routes.tracking import BATCH_PATHS, SHORT_PATHS, SINGLE_EVENT_TYPES
from retarget.ingest.limits import MAX_DEPTH, MAX_ID_BYTES
from retarget.ingest.payloads import IncomingEvent

_REF = "#/components/schemas/{name}"
_RULES = (
    f"Identifiers and names: printable, at most {MAX_ID_BYTES} bytes. Objects nested at most {MAX_DEPTH} "
    "deep. Times RFC 3339, 2000-01-01 to a year ahead. At most 32 KB per event, as published."
)
_ERROR = {
    "description": "refused: `code`, `message`, `field`?, `limit`?",
    "content": {"application/json": {}},
}
_ANSWERS = {
    "200": {"description": "accepted (Kafka acknowledged)", "content": {"application/json": {}}},
    "400": _ERROR,
    "401": _ERROR,
    "403": _ERROR,
    "413": _ERROR,
    "415": _ERROR,
    "429": _ERROR,
    "503": _ERROR,
}


def describe_tracking_api(app: FastAPI) -> None:
    """Make app.openapi() include POST /v1/{track,…,batch}, the short paths and /v1/import."""
    plain_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain_schema()
            _add_tracking_paths(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_tracking_paths(schema: dict[str, Any]) -> None:
    (_,), components = msgspec.json.schema_components([IncomingEvent], ref_template=_REF)
    event = components["IncomingEvent"]
    for field in ("timestamp", "sentAt"):
        event["properties"][field] = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
    event["properties"]["messageId"] = {"anyOf": [{"type": "string", "maxLength": 99}, {"type": "null"}]}
    event["description"] = _RULES
    components["Batch"] = {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {"type": "array", "items": {"$ref": _REF.format(name="IncomingEvent")}},
            "sentAt": event["properties"]["sentAt"],
            "context": {"anyOf": [{"type": "object"}, {"type": "null"}]},
            "integrations": {"anyOf": [{"type": "object"}, {"type": "null"}]},
            "writeKey": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }
    schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
    schema["components"].setdefault("securitySchemes", {})["writeKey"] = {"type": "http", "scheme": "basic"}
    for kind in SINGLE_EVENT_TYPES:
        schema["paths"][f"/v1/{kind}"] = _post(
            f"One `{kind}` event (Segment HTTP Tracking API).", "IncomingEvent"
        )
    for short, kind in SHORT_PATHS.items():
        schema["paths"][f"/v1/{short}"] = _post(
            f"`/v1/{kind}` (the browser SDK's short path).", "IncomingEvent"
        )
    for path in BATCH_PATHS:
        schema["paths"][path] = _post(
            "Up to 2,500 events, each with its `type`; a batch with some invalid events is a 200 that lists "
            "them by index in `rejected`, a batch with none valid a 400.",
            "Batch",
        )


def _post(description: str, body: str) -> dict[str, Any]:
    return {
        "post": {
            "tags": ["Segment API"],
            "description": description,
            "security": [{"writeKey": []}],
            "requestBody": {
                "required": True,
                "content": {
                    media_type: {"schema": {"$ref": _REF.format(name=body)}}
                    for media_type in ("application/json", "text/plain")  # text/plain: sendBeacon
                },
            },
            "responses": _ANSWERS,
        }
    }
