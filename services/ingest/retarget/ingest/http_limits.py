"""uvicorn's httptools protocol with a bound on a request's head (request line and headers).

httptools itself buffers a header of any size until its end arrives, so one request with a
64 MiB header held 64 MiB. uvicorn bounds the head only for its h11 protocol
(`h11_max_incomplete_event_size`); this applies the same setting to httptools: once a
request's head grows past it, the client gets 431 and the connection is closed.
A head that arrives in one read completes within that chunk, so the chunks are not enough:
the request line and headers httptools hands over are counted too, and a head over the
bound is refused before the app sees it, however it was split.
A head must also arrive within HEAD_TIMEOUT_S of its first byte (uvicorn has no such
timeout: a head trickled a byte every few seconds held its connection for ever), else 408
and the connection is closed.
It is named to uvicorn by its import path ("http": HTTP_PROTOCOL), so the configuration
stays picklable for the worker processes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HTTP_PROTOCOL = "retarget.ingest.http_limits:BoundedHeadProtocol"
DEFAULT_MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0  # from a head's first byte to its end

_SLOW = b"request head not received in time"

_TOO_LARGE = b"request header fields too large"


class BoundedHeadProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_head_bytes = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD_BYTES
        self._head_bytes = 0
        self._in_head = True  # until the current request's headers are complete
        self._boundaries = 0  # heads or messages completed, to tell a chunk that crossed one
        self._parsed_head_bytes = 0  # the current request's line and headers, as parsed
        self._refused = False  # a 431 or 408 was sent: what the parser still hands over is dropped
        self._head_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._in_head and self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)
        boundaries = self._boundaries
        super().data_received(data)
        # A chunk fed without completing a head or a message, with a head still incomplete,
        # is all head; counting those bounds what httptools buffers to the limit plus a chunk
        # or two, and never counts a body.
        if self._in_head and boundaries == self._boundaries and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_head_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._parsed_head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._parsed_head_bytes += len(name) + len(value) + 4  # ": " and CRLF

    def on_headers_complete(self) -> None:
        self._in_head, self._boundaries = False, self._boundaries + 1
        self._cancel_head_timer()
        if self._refused:
            return
        if self._parsed_head_bytes > self._max_head_bytes:  # a big head read in one chunk
            self._refuse_head()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        # the next request on this connection (kept alive or pipelined) starts with its head
        self._in_head, self._head_bytes, self._boundaries = True, 0, self._boundaries + 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.logger.warning("request head not complete %.0f s after it began", HEAD_TIMEOUT_S)
            self._refuse(408, _SLOW)

    def _refuse_head(self) -> None:
        self.logger.warning("request head over %d bytes refused", self._max_head_bytes)
        self._refuse(431, _TOO_LARGE)

    def _refuse(self, status: int, text: bytes) -> None:
        self._refused = True
        self._cancel_head_timer()
        self.transport.write(
            STATUS_LINE[status]
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(text)
            + text
        )
        self.transport.close()
