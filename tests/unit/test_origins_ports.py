"""An allowed origin's port as a browser writes it in `Origin`: a number without leading zeros,
and none at all when it is the scheme's default. A port stored any other way never matches
what a browser sends, so the workspace's pages would be refused with no hint why."""

from __future__ import annotations

import pytest

from retarget.common.origins import normalise_origin, origin_allowed


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("https://shop.example:00443", "https://shop.example"),  # the default port, zero-padded
        ("http://shop.example:080", "http://shop.example"),
        ("https://shop.example:080", "https://shop.example:80"),
        ("http://127.0.0.1:08123", "http://127.0.0.1:8123"),
        ("https://*.shop.example:0443", "https://*.shop.example"),
        ("https://*.shop.example:08443", "https://*.shop.example:8443"),
    ],
)
def test_a_port_is_stored_as_the_browser_sends_it(written: str, stored: str) -> None:
    assert normalise_origin(written) == stored


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("https://shop.example:00443", "https://shop.example"),
        ("http://127.0.0.1:08123", "http://127.0.0.1:8123"),
        ("https://*.shop.example:08443", "https://a.shop.example:8443"),
    ],
)
def test_the_browsers_origin_matches_what_was_written(written: str, sent: str) -> None:
    assert origin_allowed(sent, [normalise_origin(written)])


@pytest.mark.parametrize("written", ["https://shop.example:00000", "https://shop.example:065536"])
def test_a_zero_padded_port_out_of_range_is_still_refused(written: str) -> None:
    with pytest.raises(ValueError, match="port"):
        normalise_origin(written)
