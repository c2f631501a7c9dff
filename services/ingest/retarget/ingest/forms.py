"""The small form bodies /t/u accepts, parsed without a multipart library.

RFC 8058 one-click: mailbox providers POST `List-Unsubscribe=One-Click`, either
urlencoded or as multipart/form-data (the RFC's own example). Our preference page posts
`scope=all` or `scope=campaign`, urlencoded. Bodies are tiny (the route caps them at 1 KB
before parsing) and hold a few fields: more than MAX_FORM_FIELDS is not a form we understand.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

MAX_FORM_BYTES = 1024
MAX_FORM_FIELDS = 10

_PART = re.compile(
    r'content-disposition:[^\r\n]*\bname="([^"]*)"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([^\r\n]*)',
    re.IGNORECASE,
)


def form_fields(content_type: str | None, body: bytes) -> dict[str, str]:
    """Field name → first value; empty for anything that is not a form we understand."""
    kind = re.split(r"[;,]", content_type or "", maxsplit=1)[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if kind == "multipart/form-data":
        return _multipart(text)
    try:
        fields = parse_qs(text, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # over max_num_fields
        return {}
    return {name: values[0].strip() for name, values in fields.items()}


def is_one_click(fields: dict[str, str]) -> bool:
    return fields.get("List-Unsubscribe", "").lower() == "one-click"


def _multipart(text: str) -> dict[str, str]:
    """Each part's name and its first value line. The boundary is not needed to find them,
    and RFC 8058's own example declares a boundary its body does not quite use."""
    parts = _PART.findall(text)
    if len(parts) > MAX_FORM_FIELDS:
        return {}
    return {name: value.strip() for name, value in reversed(parts)}
