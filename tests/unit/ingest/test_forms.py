"""The one-click form bodies: a form with more fields than any we understand is no form."""

from __future__ import annotations

import pytest

from retarget.ingest.forms import MAX_FORM_FIELDS, form_fields, is_one_click

URLENCODED = "application/x-www-form-urlencoded"


def multipart(count: int) -> bytes:
    parts = [f'--b\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nv\r\n' for i in range(count - 1)]
    parts.append(
        '--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b--\r\n'
    )
    return "".join(parts).encode()


def test_one_click_with_a_few_fields_is_understood_both_ways() -> None:
    assert is_one_click(form_fields(URLENCODED, b"a=1&List-Unsubscribe=One-Click"))
    assert is_one_click(form_fields("multipart/form-data; boundary=b", multipart(MAX_FORM_FIELDS)))


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            URLENCODED,
            "&".join(f"f{i}=v" for i in range(MAX_FORM_FIELDS)).encode() + b"&List-Unsubscribe=One-Click",
        ),
        ("multipart/form-data; boundary=b", multipart(MAX_FORM_FIELDS + 1)),
    ],
)
def test_more_fields_than_a_form_of_ours_has_is_no_form_not_an_error(content_type: str, body: bytes) -> None:
    assert form_fields(content_type, body) == {}
