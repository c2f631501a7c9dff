"""Splitting a batch that msgspec can't decode because something in it nests past msgspec's
recursion limit: without this, one hostile event would refuse its whole batch (and SDKs
retry a refused batch for ever).

msgspec skips even a raw item recursively, so the split is a loop over the JSON's
structural tokens: the envelope is decoded with an empty `batch` and each item is kept raw,
to be decoded (and refused as too deep) on its own. Only a batch that already failed takes
this slower, pure-Python path.
"""

from __future__ import annotations

import json
import re

import msgspec

_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)


def split_batch(raw: bytes) -> tuple[bytes, list[msgspec.Raw]] | None:
    """(the envelope with `"batch": []`, the raw items); None when the body is not so shaped."""
    depth, key, last_string = 0, None, None
    opened = closed = -1  # the batch array's span in `raw`
    items: list[msgspec.Raw] = []
    start = 0
    for token in _TOKEN.finditer(raw):
        kind = token.group()[:1]
        in_batch = opened >= 0 > closed
        if kind == b'"':
            last_string = token.group()
        elif kind == b":" and depth == 1:
            key = _text(last_string)
        elif kind in b"[{":
            depth += 1
            if depth == 2 and kind == b"[" and key == "batch" and opened < 0:
                opened, start = token.start(), token.end()
        elif kind in b"]}":
            depth -= 1
            if in_batch and depth == 1:
                _add_item(items, raw[start : token.start()])
                closed = token.end()
        elif kind == b"," and in_batch and depth == 2:
            _add_item(items, raw[start : token.start()])
            start = token.end()
        if depth < 0:
            return None
    if opened < 0 or closed < 0 or depth != 0:
        return None
    return raw[:opened] + b"[]" + raw[closed:], items


def _add_item(items: list[msgspec.Raw], item: bytes) -> None:
    item = item.strip()
    if item or items:  # `[]` has no item; in `[1,]` the empty one is the decoder's to refuse
        items.append(msgspec.Raw(item))


def _text(token: bytes | None) -> str | None:
    try:
        return json.loads(token) if token else None  # type: ignore[no-any-return]
    except ValueError:
        return None
