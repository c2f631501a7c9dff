"""The demo shop's ingest URL goes into every answer's CSP (`connect-src 'self' <ingest>`) and
into the page's configuration: a value that is no origin must be refused, or its `;` ends the
directive and what follows becomes directives of the shop's policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from retarget.demo.shop.pages import content_security_policy
from retarget.demo.shop.settings import ShopSettings


@pytest.mark.parametrize(
    "value",
    [
        # ';' ends connect-src: the injected directives precede (and so override) the shop's own
        "http://ingest.example; frame-ancestors *; form-action *",
        "http://ingest.example script-src",  # a second source in connect-src
        "http://ingest.example:99999",  # no port
        "http://ingest.example:0",
        "https://*.ingest.example",  # a wildcard is a pattern, not where the SDK sends
        "http://ingest.example'",
    ],
)
def test_an_ingest_url_that_is_no_origin_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="ingest_url"):
        ShopSettings(write_key="wk", ingest_url=value)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://Ingest.Example:443/", "https://ingest.example"),
        ("http://127.0.0.1:18080", "http://127.0.0.1:18080"),
        ("http://[::1]:18080", "http://[::1]:18080"),
    ],
)
def test_an_ingest_origin_is_kept_as_the_browser_writes_it(value: str, origin: str) -> None:
    settings = ShopSettings(write_key="wk", ingest_url=value)  # type: ignore[call-arg]
    assert settings.ingest_url == origin
    directives = content_security_policy(settings.ingest_url).split("; ")
    assert f"connect-src 'self' {origin}" in directives and len(directives) == 9
