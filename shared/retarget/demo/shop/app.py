"""The demo shop as a Starlette app: its pages, their scripts and the SDK bundles.

    create_app(ShopSettings(write_key="…"))

`/` is the shop (`?sdk=rudderstack` or `/rudder/` for RudderStack's SDK instead of Segment's),
`/tracking` says what is tracked, `/preferences` lets a visitor withdraw consent; `/static/`
holds the shop's own scripts and styles, `/vendor/` the SDK bundles `make shop-assets` built.
Every answer carries a strict CSP: the shop itself and ingest's origin, nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retarget.demo.shop.pages import SDKS, Sdk, content_security_policy, page_config, render
from retarget.demo.shop.settings import ShopSettings

HERE = Path(__file__).parent
PAGES = HERE / "html"
VENDOR = HERE / "vendor"


def create_app(settings: ShopSettings) -> Starlette:
    templates = {name: (PAGES / f"{name}.html").read_text() for name in ("index", "tracking", "preferences")}

    def serving(name: str, sdk: Sdk | None = None) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint of a page: on `sdk`, or on the one `?sdk=` names (Segment's by default)."""

        async def endpoint(request: Request) -> Response:
            chosen = sdk or _sdk_of(request)
            if isinstance(chosen, Response):
                return chosen
            return HTMLResponse(render(templates[name], page_config(settings, chosen)))

        return endpoint

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/", serving("index")),
            Route("/rudder/", serving("index", "rudderstack")),
            Route("/tracking", serving("tracking")),  # no SDK there, but its links keep the visitor's
            Route("/preferences", serving("preferences")),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=HERE / "static")),
            # check_dir off: the app starts without the bundles (unit tests); `python -m` checks them
            Mount("/vendor", StaticFiles(directory=VENDOR, check_dir=False)),
        ],
        middleware=[Middleware(SecurityHeaders, csp=content_security_policy(settings.ingest_url))],
    )


def _sdk_of(request: Request) -> Sdk | Response:
    name = request.query_params.get("sdk", "segment")
    if name not in SDKS:
        return PlainTextResponse(f"unknown sdk {name!r}: use segment or rudderstack", status_code=400)
    return SDKS[name]


class SecurityHeaders:
    """Adds the CSP and its companions to every answer (pages, scripts, errors alike)."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)
