"""Decoding: invalid JSON and wrong types are 400s that name the field."""

from __future__ import annotations

import pytest

from retarget.ingest.deep_batch import split_batch
from retarget.ingest.errors import InvalidField, InvalidPayload
from retarget.ingest.payloads import decode_batch, decode_event, decode_object


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
    assert envelope.write_key == "k" and decode_object(envelope.context, "context") == {"a": 1}
    assert decode_object(envelope.integrations, "integrations") is None


DEEP = b"[" * 3000 + b"]" * 3000


def test_a_batch_with_one_event_nested_too_deep_for_the_decoder_keeps_its_other_events() -> None:
    tricky = b'{"type":"track","event":"a \\" ] } [ , {","userId":"u"}'  # brackets inside a string
    raw = b'{"writeKey":"k","batch":[' + tricky + b',{"properties":{"a":' + DEEP + b'}}, 3],"sentAt":null}'
    envelope = decode_batch(raw)
    assert envelope.write_key == "k" and len(envelope.batch) == 3
    assert decode_event(envelope.batch[0]).event == 'a " ] } [ , {'
    with pytest.raises(InvalidPayload, match="nested too deeply"):
        decode_event(envelope.batch[1])
    assert bytes(envelope.batch[2]) == b"3"


def test_an_envelope_nested_too_deep_or_malformed_is_refused_whole_with_a_typed_error() -> None:
    for raw in (
        b'{"batch":[],"context":{"a":' + DEEP + b"}}",
        b'{"batch":[' + DEEP + b"]",  # never closed
    ):
        with pytest.raises(InvalidPayload, match="nested too deeply"):
            decode_batch(raw)


def test_a_batch_context_nested_past_the_limit_is_refused_naming_it() -> None:
    envelope = decode_batch(b'{"batch":[],"context":' + b'{"a":' * 40 + b"{}" + b"}" * 40 + b"}")
    with pytest.raises(InvalidField) as err:
        decode_object(envelope.context, "context")
    assert err.value.field == "context"


def test_strings_that_are_not_utf8_are_a_typed_error_in_an_event_its_batch_or_an_envelope() -> None:
    for raw in (b'{"userId":"u\xff","event":"e"}', b'{"properties":{"\xff":1}}'):
        with pytest.raises(InvalidPayload, match="UTF-8"):
            decode_event(raw)
    envelope = decode_batch(b'{"batch":[{"userId":"\xff"},{"userId":"u"}]}')
    with pytest.raises(InvalidPayload, match="UTF-8"):
        decode_event(envelope.batch[0])
    assert decode_event(envelope.batch[1]).user_id == "u"
    for raw in (b'{"batch":[],"writeKey":"\xff"}', b'{"batch":[],"context":{"a":"\xff"}}'):
        with pytest.raises(InvalidPayload, match="UTF-8"):
            decode_object(decode_batch(raw).context, "context")


def test_the_batch_splitter_refuses_unbalanced_closers_and_keeps_no_empty_item() -> None:
    deep = b"[" * 2000 + b"]" * 2000
    assert split_batch(b'{"batch":[' + deep + b"]}][") is None  # closes more than it opened
    assert split_batch(b'{"batch":[]}') == (b'{"batch":[]}', [])
    envelope, items = split_batch(b'{"batch":[' + deep + b', {"a":1} ],"x":1}')  # type: ignore[misc]
    assert (envelope, [bytes(i) for i in items]) == (b'{"batch":[],"x":1}', [deep, b'{"a":1}'])
