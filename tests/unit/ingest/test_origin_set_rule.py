"""OriginSet (ingest's fast lookup) must decide exactly as the rule it speeds up,
retarget.common.origins.origin_allowed: the exact origins went through a set lookup of the
header as sent, so an upper-case Origin was refused for an exact origin while the same header
passed a wildcard, and the two disagreed."""

from __future__ import annotations

import pytest

from retarget.common.origins import origin_allowed
from retarget.ingest.allowed_origins import OriginSet

ALLOWED = ("https://shop.example", "http://127.0.0.1:8123", "https://*.brand.example")


@pytest.mark.parametrize(
    "origin",
    [
        "https://shop.example",
        "HTTPS://SHOP.EXAMPLE",
        "https://Shop.Example",
        "http://127.0.0.1:8123",
        "HTTPS://WWW.BRAND.EXAMPLE",
        "https://brand.example",
        "https://evilshop.example",
        "https://shop.example.evil.com",
        "null",
        "",
    ],
)
def test_the_set_decides_as_the_rule(origin: str) -> None:
    assert OriginSet(ALLOWED).allows(origin) == origin_allowed(origin, ALLOWED)
