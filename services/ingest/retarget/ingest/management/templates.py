"""/v1/workspaces/{workspace_id}/templates: the shared object routes (objects.py) plus a
preview, which renders a draft or the current template through the composer's own render
path for the sample profile or one of the segmenter's profiles. Nothing is stored or sent.
With `?spam_score=true` the answer also has the complete message's SpamAssassin score."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from retarget.config.records import Kind
from retarget.ingest.errors import InvalidField, Unavailable
from retarget.ingest.management.access import AdminDep
from retarget.ingest.management.bodies import read_object
from retarget.ingest.management.context import Management, ManagementDep
from retarget.ingest.management.errors import ObjectNotFound, rejected
from retarget.ingest.management.names import checked_name
from retarget.ingest.management.objects import apply_checked, effective_one, json_response, object_router

KIND: Kind = "template"
router = object_router(
    KIND, "templates", '{"subject": str, "html": str or null, "text": str or null} (Jinja2)'
)

PREVIEW_DOC = {
    "parameters": [
        {
            "name": "spam_score",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": False},
            "description": "also score the complete message with SpamAssassin: "
            '"spam_score": {"score", "threshold", "rules"}; 503 when SpamAssassin is not installed',
        }
    ],
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "draft": {
                            "type": "object",
                            "description": "a template body to render instead of the stored one",
                        },
                        "profile_id": {
                            "type": "string",
                            "description": "render for this profile (else a sample)",
                        },
                    },
                }
            }
        },
    },
}


@router.post("/{name}/preview", summary="Render a draft or the current template", openapi_extra=PREVIEW_DOC)
async def preview(name: str, request: Request, admin: AdminDep, m: ManagementDep) -> Response:
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    ask = await read_object(request, limit=m.max_body_bytes) if has_body else {}
    checked_name(KIND, name)
    spam_score = _wants_spam_score(request.query_params.get("spam_score"))
    body = await _template_body(m, admin.workspace_id, name, ask.get("draft"), admin.author)
    profile = await _profile(m, admin.workspace_id, ask.get("profile_id"))
    try:
        rendered = await m.render(admin.workspace_id, name, body, profile)
    except ValueError as exc:  # a render error the checker could not foresee (e.g. this profile's data)
        raise rejected(exc) from None
    answer = {key: rendered.get(key) for key in ("subject", "html", "text")}
    if spam_score:
        if m.score_spam is None:
            raise Unavailable("no spam score: this ingest has no SpamAssassin scorer", retry_after_s=300)
        answer["spam_score"] = await m.score_spam(rendered["message"])
    return json_response(answer)


def _wants_spam_score(value: str | None) -> bool:
    if value in (None, "false"):
        return False
    if value == "true":
        return True
    raise InvalidField("spam_score must be true or false", field="spam_score")


async def _template_body(
    m: Management, workspace_id: str, name: str, draft: Any, author: str
) -> dict[str, Any]:
    if draft is None:
        return dict((await effective_one(m, workspace_id, KIND, name))["body"] or {})
    if not isinstance(draft, dict):
        raise InvalidField("draft must be an object with subject, html and text", field="draft")
    change = await apply_checked(m, workspace_id, KIND, name, draft, author=author, dry_run=True)
    return dict(change.body or draft)


async def _profile(m: Management, workspace_id: str, profile_id: Any) -> dict[str, Any] | None:
    if profile_id is None:
        return None  # the composer's sample profile
    if not isinstance(profile_id, str) or not 0 < len(profile_id) <= 256:
        raise InvalidField("profile_id must be a string of 1 to 256 characters", field="profile_id")
    found = await m.profile(workspace_id, profile_id)
    if found is None:
        raise ObjectNotFound("the segmenter has no profile with this id in this workspace")
    return dict(found)
