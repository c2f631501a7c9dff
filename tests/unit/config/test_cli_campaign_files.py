"""`retarget campaigns apply` reads each file before storing anything: a file the API would
refuse (YAML aliases, nesting past the recursion limit) is a ValueError naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from retarget.cli.campaigns import _read

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(20)
)


@pytest.mark.parametrize(
    "text",
    [
        BOMB,  # "billion laughs": orjson.dumps in validation expands it (4**20 lists)
        "name: x\ndata: " + "[" * 5000 + "]" * 5000 + "\n",  # RecursionError, a traceback before
    ],
)
def test_a_file_the_api_would_refuse_is_a_value_error_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"bomb\.yaml"):
        _read(path)


def test_a_plain_campaign_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "winback.yaml"
    path.write_text("name: winback\nwait: 3d\nentry: {event: Order Completed}\n", encoding="utf-8")
    assert _read(path) == (
        "winback",
        {"name": "winback", "wait": "3d", "entry": {"event": "Order Completed"}},
    )
