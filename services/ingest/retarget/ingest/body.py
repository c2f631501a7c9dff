"""Read a request body without ever holding more than the limit, gzip or not.

The limit applies to the JSON, i.e. after decompression, as Segment's does. A declared
Content-Length over the limit is refused before reading; a body streamed without one is cut
off at the limit; a gzip body is inflated at most one byte past the limit, so a small
"gzip bomb" can't make the process allocate gigabytes.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping

from retarget.ingest.errors import InvalidPayload, PayloadTooLarge, UnsupportedMediaType

# text/plain: what sendBeacon and analytics-next send (a "simple" request needs no CORS
# preflight); the body is JSON all the same. No Content-Type at all: many server clients.
JSON_MEDIA_TYPES = frozenset({"application/json", "text/plain"})


def check_media_type(content_type: str | None) -> None:
    """UnsupportedMediaType unless the body is declared JSON or plain text, in UTF-8."""
    if content_type is None:
        return
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media_type[:100]!r} is not accepted: send the JSON body as "
            "application/json or text/plain (UTF-8)"
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"charset {value.strip()[:40]!r} is not accepted: send UTF-8")


async def read_body(
    headers: Mapping[str, str], chunks: AsyncIterator[bytes], *, limit: int, what: str
) -> bytes:
    """The decoded body, or PayloadTooLarge naming `what` ("event", "batch") and the limit."""
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(what, limit)
    raw = bytearray()
    async for chunk in chunks:
        raw += chunk
        if len(raw) > limit:
            raise _too_large(what, limit)
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return bytes(raw)
    if encoding == "gzip":
        return _gunzip(bytes(raw), limit, _too_large(what, limit))
    raise InvalidPayload(f"Content-Encoding {encoding!r} is not supported (use gzip or none)")


def _too_large(what: str, limit: int) -> PayloadTooLarge:
    # made only when refusing: an exception made for every request cost ~1% of a small one's CPU
    return PayloadTooLarge(f"{what} is larger than {limit} bytes", limit=limit)


def _gunzip(data: bytes, limit: int, too_large: PayloadTooLarge) -> bytes:
    """Every member of the gzip stream (RFC 1952: a file is a series of members), inflated
    under one limit; bytes after the last member that are no member are a 400, not dropped."""
    out = bytearray()
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
        try:
            out += inflater.decompress(data, limit + 1 - len(out))  # never 0 (= unlimited)
        except zlib.error as exc:
            raise InvalidPayload(f"body is not valid gzip: {exc}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise too_large
        if not inflater.eof:
            raise InvalidPayload("body is not valid gzip: truncated stream")
        data = inflater.unused_data
        if not data:
            return bytes(out)
