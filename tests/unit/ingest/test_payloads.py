"""Decoding: invalid JSON and wrong types are 400s that name the field."""

from __future__ import annotations

import pytest

from retarget.ingest.errors import InvalidField, InvalidPayload
from retarget.ingest.payloads import decode_batch, decode_event


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"userId":["u"]}', "userId"),
        (b'{"properties":"not an object"}', "properties"),
        (b'{"timestamp":"yesterday"}', "timestamp"),
        (b'{"event":5}', "event"),
        (b'{"messageId":12}', "messageId"),
        (b'{"context":[]}', "context"),
    ],
)
def test_wrong_types_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidField) as err:
        decode_event(raw)
    assert err.value.field == field
    assert err.value.status == 400


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"a":1}garbage'])
def test_invalid_json_is_an_invalid_payload(raw: bytes) -> None:
    with pytest.raises(InvalidPayload):
        decode_event(raw)


def test_a_body_that_is_not_an_object_is_invalid() -> None:
    with pytest.raises(InvalidPayload):
        decode_event(b"[1, 2]")


def test_batch_needs_a_batch_array() -> None:
    with pytest.raises(InvalidField) as err:
        decode_batch(b'{"batch": {}}')
    assert err.value.field == "batch"
    with pytest.raises(InvalidField) as missing:
        decode_batch(b'{"sentAt": null}')
    assert missing.value.field == "batch"


def test_batch_items_stay_raw_so_each_is_sized_and_decoded_alone() -> None:
    envelope = decode_batch(b'{"batch":[{"type":"track"}, 3], "context":{"a":1}, "writeKey":"k"}')
    assert [bytes(item) for item in envelope.batch] == [b'{"type":"track"}', b"3"]
    assert envelope.write_key == "k" and envelope.context == {"a": 1}
