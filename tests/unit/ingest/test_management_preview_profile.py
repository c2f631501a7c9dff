"""A segmenter profile becomes the preview's recipient and cart."""

from __future__ import annotations

from retarget.ingest.management.preview_profile import preview_profile

LINE = {"product_id": "p1", "name": "Boot", "price": 10.0, "quantity": 2, "currency": "EUR"}


def test_the_profiles_address_names_and_cart_lines_are_taken() -> None:
    profile = {
        "workspace_id": "ws1",
        "profile_id": "u-1",
        "email": "ann@example.com",
        "first_name": "Ann",
        "last_name": None,
        "cart": {"p1": {"line": LINE, "added_at": "2026-11-29T10:00:00Z"}},
        "pending": {"abandoned_cart": {}},
    }
    assert preview_profile(profile) == {
        "recipient": {"email": "ann@example.com", "first_name": "Ann"},
        "cart": [LINE],
    }


def test_a_profile_without_an_address_or_a_cart_keeps_the_samples() -> None:
    assert preview_profile({"profile_id": "anon-1", "first_name": "Ann", "cart": {}}) == {}
