"""The few HTML answers of the tracking links: small, self-contained, never cached.

Nothing in them comes from the request except what a valid token says (escaped), and the
"not found" page is the same whatever was wrong, so it tells a prober nothing.
"""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse, Response

NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
_PAGE_HEADERS = NO_CACHE | {
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_STYLE = "body{font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em;line-height:1.5}"


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)


def not_found() -> Response:
    return _page("Link not found", "<p>This link is not valid or has expired.</p>", 404)


def link_refused() -> Response:
    return _page(
        "Link blocked",
        "<p>This link leads outside the sender's own website, so it was not followed.</p>",
        403,
    )


def too_long() -> Response:
    return _page("Link not valid", "<p>This address is too long to be one of our links.</p>", 414)


def unsubscribe_form(campaign: str) -> Response:
    """The page behind the unsubscribe link: it asks; only the POST unsubscribes."""
    return _page(
        "Unsubscribe",
        '<form method="post">'
        '<p><button name="scope" value="all">Unsubscribe from all our emails</button></p>'
        f'<p><button name="scope" value="campaign">Only stop “{escape(campaign)}” emails</button></p>'
        "</form>",
    )


def unsubscribed(scope: str, campaign: str, *, new: bool) -> Response:
    what = "any more emails from us" if scope == "all" else f"“{escape(campaign)}” emails any more"
    already = "" if new else " (you had already asked)"
    return _page("You are unsubscribed", f"<p>You will not get {what}{already}.</p>")


def bad_form() -> Response:
    return _page("Unsubscribe", "<p>Please use the buttons on the unsubscribe page.</p>", 400)


def try_later(retry_after_s: int) -> Response:
    response = _page(
        "Please try again",
        "<p>We could not record your request just now. Please try again in a minute.</p>",
        503,
    )
    response.headers["Retry-After"] = str(retry_after_s)
    return response
