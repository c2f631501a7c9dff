"""The feed record: a round trip keeps everything; junk is a ValueError that names the
problem without echoing the content."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from retarget.common.topics import Topics, topic_layout
from retarget.config.records import ConfigChange, config_topic, decode, encode

CHANGE = ConfigChange(
    workspace_id="shop-1",
    kind="campaign",
    name="abandoned_cart",
    version=412,
    deleted=False,
    body={"name": "abandoned_cart", "wait": "4h"},
    author="sk:rt_sk_ab12",
    changed_at=datetime(2026, 11, 29, 15, 0, tzinfo=UTC),
)


def test_a_change_survives_encode_and_decode():
    key, value = encode(CHANGE)
    assert key == b"shop-1/campaign/abandoned_cart"
    assert decode(key, value) == CHANGE


def test_a_deletion_has_no_body():
    deleted = replace(CHANGE, deleted=True, body={"ignored": 1})
    key, value = encode(deleted)
    assert orjson.loads(value)["body"] is None
    assert decode(key, value) == replace(deleted, body=None)


def _value(**fields: object) -> bytes:
    return orjson.dumps(orjson.loads(encode(CHANGE)[1]) | fields)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff not json secret@example.com", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_value(kind="sandwich"), "field kind"),
        (_value(version=0), "field version"),
        (_value(version=True), "field version"),
        (_value(version="7"), "field version"),
        (_value(deleted="no"), "field deleted"),
        (_value(body=None), "field body"),
        (_value(changed_at="yesterday"), "field changed_at"),
        (_value(changed_at="2026-11-29T15:00:00"), "UTC offset"),
        (_value(workspace_id=""), "field workspace_id"),
        (_value(name=None), "field name"),
    ],
)
def test_junk_is_a_value_error_naming_the_problem(value: bytes, reason: str):
    with pytest.raises(ValueError, match=reason) as caught:
        decode(b"shop-1/campaign/abandoned_cart", value)
    assert "secret@example.com" not in str(caught.value)


def test_a_key_that_does_not_match_the_value_is_refused():
    with pytest.raises(ValueError, match="key"):
        decode(b"shop-2/campaign/abandoned_cart", encode(CHANGE)[1])


def test_the_config_topic_is_compacted_with_one_partition():
    assert config_topic("retarget") == "retarget.config.v1" == Topics("retarget").config
    assert Topics("retarget").config in Topics("retarget").all()
    layout = topic_layout("retarget.config.v1")
    assert layout.partitions == 1 and layout.configs == {"cleanup.policy": "compact"}
    assert topic_layout("retarget.events.v1").partitions is None
