"""Tracking links: GET /t/o/<token>.gif (open pixel), GET /t/c/<token> (click redirect),
GET /t/u/<token> (unsubscribe page: asks, changes nothing, since link scanners prefetch
GETs) and POST /t/u/<token> (RFC 8058 one-click, or the page's buttons).

Every bad input gets a plain, harmless answer and never a 5xx: a bad token is the same
404 page whatever was wrong with it, a pixel is always a GIF, a click with a bad token
does not redirect anywhere, and a genuine click token redirects only to the workspace's own
link domains (otherwise a 403 page). Only a database outage during an unsubscribe (or a click's domain check) is a 503, so
the mailbox provider (or the person) tries again: an unsubscribe is never dropped.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from retarget.ingest import metrics
from retarget.ingest.api import pages
from retarget.ingest.api.deps import ServicesDep
from retarget.ingest.body import read_body
from retarget.ingest.errors import IngestError, Unavailable
from retarget.ingest.forms import MAX_FORM_BYTES, form_fields, is_one_click
from retarget.ingest.links import MAX_QUERY_CHARS, PIXEL_GIF, LinkRefused, NotOurLink

router = APIRouter(prefix="/t", tags=["tracking links"], include_in_schema=False)


def _query_too_long(request: Request) -> bool:
    return len(request.scope.get("query_string", b"")) > MAX_QUERY_CHARS


@router.get("/o/{token}.gif")
async def open_pixel(token: str, request: Request, services: ServicesDep) -> Response:
    """Always the GIF (a broken image helps no one); an event only for a valid token."""
    if not _query_too_long(request):
        try:
            await services.links.opened(token, request.headers.get("user-agent"))
        except NotOurLink:
            metrics.count_tracking("open", "invalid")
    return Response(PIXEL_GIF, media_type="image/gif", headers=pages.NO_CACHE)


@router.get("/c/{token}")
async def click(token: str, request: Request, services: ServicesDep) -> Response:
    if _query_too_long(request):
        return pages.too_long()
    try:
        url = await services.links.clicked(token, request.headers.get("user-agent"))
    except NotOurLink:
        metrics.count_tracking("click", "invalid")
        return pages.not_found()
    except LinkRefused as refused:  # signed, but not to one of the workspace's own sites
        metrics.count_tracking("click", f"refused_{refused.reason}")
        return pages.link_refused()
    except Unavailable as exc:
        metrics.count_tracking("click", "unavailable")
        return pages.try_later(exc.retry_after_s)
    return RedirectResponse(url, status_code=302, headers=pages.NO_CACHE | {"Referrer-Policy": "no-referrer"})


@router.get("/u/{token}")
async def unsubscribe_page(token: str, request: Request, services: ServicesDep) -> Response:
    if _query_too_long(request):
        return pages.too_long()
    try:
        claims = services.links.claims(token, "unsubscribe")
    except NotOurLink:
        metrics.count_tracking("unsubscribe_page", "invalid")
        return pages.not_found()
    return pages.unsubscribe_form(claims.campaign)


@router.post("/u/{token}")
async def unsubscribe(token: str, request: Request, services: ServicesDep) -> Response:
    if _query_too_long(request):
        return pages.too_long()
    try:
        body = await read_body(request.headers, request.stream(), limit=MAX_FORM_BYTES, what="form")
    except IngestError:
        return pages.bad_form()
    fields = form_fields(request.headers.get("content-type"), body)
    if is_one_click(fields):
        scope, source = "all", "link:one-click"
    elif fields.get("scope") in ("all", "campaign"):
        scope, source = fields["scope"], "link:page"
    else:
        return pages.bad_form()
    try:
        done = await services.links.unsubscribe(token, scope=scope, source=source)  # type: ignore[arg-type]
    except NotOurLink:
        metrics.count_tracking("unsubscribe", "invalid")
        return pages.not_found()
    except Unavailable as exc:
        metrics.count_tracking("unsubscribe", "unavailable")
        return pages.try_later(exc.retry_after_s)
    metrics.count_tracking("unsubscribe", "recorded" if done.new else "replayed")
    return pages.unsubscribed(scope, done.claims.campaign, new=done.new)
