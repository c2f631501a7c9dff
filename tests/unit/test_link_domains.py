"""Which destinations a workspace's emails may link to: https on its own domains only."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from retarget.common.link_domains import allowed_link_domains, link_refusal, normalise_domain
from retarget.common.workspaces import Workspace

ALLOWED = ("shop.example",)


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/p/1",
        "https://SHOP.example/p/1?utm=x#top",
        "https://www.shop.example/",
        "https://cdn.img.shop.example/a.jpg",
        "https://shop.example/stiefel-größe",  # non-ASCII in the path is fine
    ],
)
def test_https_links_on_the_domain_and_its_subdomains_are_allowed(url: str) -> None:
    assert link_refusal(url, ALLOWED) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.example/login", "off_domain"),
        ("https://evilshop.example/", "off_domain"),  # a suffix of the name is not a subdomain
        ("https://shop.example.evil.example/", "off_domain"),
        ("http://shop.example/p/1", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("//shop.example/p", "scheme"),
        ("https://shop.example@evil.example/", "userinfo"),
        ("https://user:pw@shop.example/", "userinfo"),
        ("https://shop.example:8443/", "port"),
        ("https://shop.example:443/", "port"),
        ("https://shop.example./", "host"),  # trailing dot
        ("https://shоp.example/", "host"),  # Cyrillic "о": an IDN look-alike
        ("https://xn--shp-ted.example/", "off_domain"),  # the same, in punycode
        ("https://%73hop.example/", "host"),
        ("https://[::1]/", "port"),
        ("https://127.0.0.1/", "host"),
        ("https://evil.example\\.shop.example/", "malformed"),  # browsers read "\" as "/"
        ("https://shop.example\\@evil.example/", "malformed"),
        ("https://evil.example\t.shop.example/", "malformed"),  # Python drops the tab
        ("https://shop.example/\r\nSet-Cookie: x", "malformed"),
        ("https://", "host"),
    ],
)
def test_everything_else_is_refused_with_a_reason(url: str, reason: str) -> None:
    assert link_refusal(url, ALLOWED) == reason


def test_nothing_is_allowed_without_domains() -> None:
    assert link_refusal("https://shop.example/", ()) == "off_domain"


def workspace(**fields) -> Workspace:
    return Workspace("ws", "Shop", "Shop", fields.pop("from_email", "news@Shop.Example"), "1 St", **fields)


def test_default_domains_are_the_from_address_domain_and_configured_ones_replace_it() -> None:
    assert allowed_link_domains(workspace()) == ("shop.example",)
    assert allowed_link_domains(workspace(link_domains=("boots.example",))) == ("boots.example",)
    assert allowed_link_domains(workspace(link_domains=())) == ()
    assert allowed_link_domains(workspace(from_email="no-domain")) == ()


@pytest.mark.parametrize(
    "bad", ["com", "shop..example", "-shop.example", "shöp.example", "a.b/c", "1.2.3.4", ""]
)
def test_configured_domains_must_be_plain_dns_names(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_domain(bad)


def test_configured_domains_are_stored_lower_case() -> None:
    assert normalise_domain(" Shop.Example ") == "shop.example"


# Property: whatever a URL is made of, when the rule accepts it a second, independent parser
# (httpx's, which follows the WHATWG URL rules browsers use) agrees that it goes over https,
# without userinfo or port, to the domain or one of its subdomains.
_pieces = st.sampled_from(
    [
        "shop.example",
        "evil.example",
        "www.shop.example",
        "SHOP.EXAMPLE",
        "shop.example.evil.example",
        "@",
        ":",
        ":443",
        "\\",
        "/",
        "//",
        "?",
        "#",
        ".",
        "%2e",
        "%40",
        "\t",
        " ",
        "\r\n",
        "xn--shp-ted",
        "о",
        "user",
        "[::1]",
        "127.0.0.1",
        "ｓhop.example",
        "shop。example",
    ]
)
_urls = st.builds(
    lambda scheme, parts: scheme + "".join(parts),
    st.sampled_from(["https://", "http://", "HTTPS://", "https:/", "https:\\\\", "javascript:", "//", ""]),
    st.lists(_pieces, min_size=1, max_size=6),
)


@settings(max_examples=2000, deadline=None)
@given(_urls)
@example("https://www.shop.example/p?x=@evil.example#:443")
@example("https://shop.example\\@evil.example/")
def test_an_accepted_url_goes_to_the_domain_by_any_parser(url: str) -> None:
    if link_refusal(url, ALLOWED) is not None:
        return
    parsed = httpx.URL(url)
    # the ASCII host as sent over the wire: `.host` decodes xn-- labels and raises on ones that
    # aren't valid punycode, which says nothing about where the link goes
    host = parsed.raw_host.decode("ascii")
    assert parsed.scheme == "https" and parsed.userinfo == b"" and parsed.port is None
    assert host == "shop.example" or host.endswith(".shop.example")
