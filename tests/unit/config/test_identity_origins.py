"""The identity's allowed_origins field: normalised, deduplicated, bounded, `*` refused."""

from __future__ import annotations

import pytest

from retarget.config.schemas import MAX_ORIGINS
from retarget.config.validation import ConfigInvalid, validate

IDENTITY = {"from_name": "Shop", "from_email": "shop@example.com", "postal_address": "1 Main St"}


def test_origins_are_stored_normalised_once_each() -> None:
    body = validate(
        "identity", "", IDENTITY | {"allowed_origins": ["HTTPS://Shop.Example:443/", "https://shop.example"]}
    )
    assert body["allowed_origins"] == ["https://shop.example"]


def test_no_origins_by_default() -> None:
    assert validate("identity", "", IDENTITY)["allowed_origins"] == []


@pytest.mark.parametrize(
    ("origins", "named"),
    [(["*"], "allowed_origins.0"), (["https://shop.example", "https://x.example/p"], "allowed_origins.1")],
)
def test_a_bad_origin_is_refused_naming_it(origins: list[str], named: str) -> None:
    with pytest.raises(ConfigInvalid, match=named):
        validate("identity", "", IDENTITY | {"allowed_origins": origins})


def test_the_list_is_bounded() -> None:
    too_many = [f"https://s{i}.example" for i in range(MAX_ORIGINS + 1)]
    with pytest.raises(ConfigInvalid, match="allowed_origins"):
        validate("identity", "", IDENTITY | {"allowed_origins": too_many})
