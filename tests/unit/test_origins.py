"""The allowed-origin rules (retarget.common.origins): what a workspace may list, what matches."""

from __future__ import annotations

import pytest

from retarget.common.origins import normalise_origin, normalise_origins, origin_allowed


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://shop.example", "https://shop.example"),
        ("HTTPS://Shop.Example", "https://shop.example"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
        ("https://shop.example:443", "https://shop.example"),  # browsers never send the default port
        ("http://shop.example:80", "http://shop.example"),
        ("https://shop.example:8443", "https://shop.example:8443"),
        ("https://shop.example/", "https://shop.example"),  # pasted from the address bar
        ("https://*.shop.example", "https://*.shop.example"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        (" https://shop.example ", "https://shop.example"),
    ],
)
def test_origins_are_stored_as_browsers_send_them(given: str, stored: str) -> None:
    assert normalise_origin(given) == stored


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("*", "'*' is refused"),
        ("https://*", "not an origin"),
        ("ftp://shop.example", "not an origin"),
        ("shop.example", "not an origin"),
        ("https://shop.example/cart", "no path"),
        ("https://shop.example?x=1", "not an origin"),
        ("https://shop.example#top", "not an origin"),
        ("https://user@shop.example", "not an origin"),
        ("https://shop.example:99999", "port out of range"),
        ("https://shop.example:0", "port out of range"),
        ("https://*.example", "wildcard covers subdomains"),
        ("https://sub.*.shop.example", "not an origin"),
        ("https://shöp.example", "xn-- form"),
        ("null", "not an origin"),
        ("https://-shop.example", "not an origin"),
    ],
)
def test_what_is_not_an_origin_is_refused_saying_why(given: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("?", r"\?").replace("*", r"\*")):
        normalise_origin(given)


def test_duplicates_are_dropped_in_order() -> None:
    assert normalise_origins(["https://b.example", "HTTPS://b.example", "https://a.example"]) == [
        "https://b.example",
        "https://a.example",
    ]


ALLOWED = ("https://shop.example", "http://127.0.0.1:8123", "https://*.brand.example")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://shop.example", True),
        ("HTTPS://SHOP.EXAMPLE", True),
        ("http://shop.example", False),  # another scheme is another origin
        ("https://shop.example:8443", False),
        ("https://www.shop.example", False),  # exact means exact
        ("https://evilshop.example", False),
        ("http://127.0.0.1:8123", True),
        ("http://127.0.0.1:8124", False),
        ("https://www.brand.example", True),
        ("https://a.b.brand.example", True),
        ("https://brand.example", False),  # the wildcard covers subdomains only
        ("https://evilbrand.example", False),
        ("http://www.brand.example", False),
        ("https://www.brand.example:8443", False),
        ("https://www.brand.example.evil.example", False),
        ("null", False),
        ("", False),
    ],
)
def test_an_origin_matches_exactly_or_under_a_subdomain_wildcard(origin: str, allowed: bool) -> None:
    assert origin_allowed(origin, ALLOWED) is allowed
