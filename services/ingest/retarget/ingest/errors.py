"""Known failures, each with the HTTP answer it becomes.

The body shape is {"success": false, "code", "message", …}: Segment's SDKs read `code` and
`message` from an error body, so they log something useful. Bad input is always a 4xx;
only a dependency we can't reach is a 503, and it always says when to come back.
"""

from __future__ import annotations

from typing import Any


class IngestError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.limit = limit

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": False, "code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.limit is not None:
            body["limit"] = self.limit
        return body

    def headers(self) -> dict[str, str]:
        return {}


class InvalidPayload(IngestError):
    """The body is not JSON, not gzip, or a field has the wrong type or value."""

    code = "invalid_payload"


class InvalidField(IngestError):
    code = "invalid_field"


class TooManyEvents(IngestError):
    code = "batch_too_many_events"


class PayloadTooLarge(IngestError):
    status = 413
    code = "payload_too_large"


class Unauthorized(IngestError):
    status = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="retarget"'}


class _NeedsSecretKey(IngestError):
    """An answer of a secret-key endpoint: the body says which credential would be accepted."""

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope

    def body(self) -> dict[str, Any]:
        return super().body() | {"needed": {"credential": "secret_key", "scope": self.scope}}


class SecretKeyMissing(_NeedsSecretKey, Unauthorized):
    """No key, an unknown or a revoked one (401)."""

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="retarget"'}


class SecretKeyRequired(_NeedsSecretKey):
    """A write key (public, events only) sent where a secret key is needed."""

    status = 403
    code = "secret_key_required"


class InsufficientScope(_NeedsSecretKey):
    """A valid secret key without the scope this endpoint needs."""

    status = 403
    code = "insufficient_scope"


class _RetryLater(IngestError):
    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class RateLimited(_RetryLater):
    status = 429
    code = "rate_limited"


class Unavailable(_RetryLater):
    """Kafka or PostgreSQL can't take the request now; nothing was accepted."""

    status = 503
    code = "unavailable"


class OriginNotAllowed(IngestError):
    """A browser request from a page whose origin the key's workspace does not list."""

    status = 403
    code = "origin_not_allowed"


class BodyTooSlow(IngestError):
    """The body did not arrive in time; the connection is closed (the rest of it is unread)."""

    status = 408
    code = "request_timeout"

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class UnsupportedMediaType(IngestError):
    status = 415
    code = "unsupported_media_type"
