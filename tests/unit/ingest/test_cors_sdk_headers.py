"""The preflight allows every request header the bundled browser SDKs send: one missing and
the browser refuses the SDK's requests before ingest sees them (found with the demo shop in
Chromium: RudderStack's v3 SDK adds SentAt and its Rsa-* retry headers to each event)."""

from __future__ import annotations

from retarget.ingest.cors import ALLOWED_HEADERS

# @rudderstack/analytics-js 3.x, XhrQueue: Authorization (Basic write key), AnonymousId,
# SentAt, and on retries Rsa-Retry-Attempt, Rsa-Retry-Reason, Rsa-Since-*; Rsa-Recovered for
# events reclaimed from another tab's queue. analytics-next sends text/plain with no header.
RUDDERSTACK_HEADERS = {
    "content-type",
    "authorization",
    "anonymousid",
    "sentat",
    "rsa-recovered",
    "rsa-retry-attempt",
    "rsa-retry-reason",
    "rsa-since-first-attempt",
    "rsa-since-last-attempt",
}


def test_the_preflight_allows_every_header_rudderstacks_sdk_sends():
    allowed = {name.strip().lower() for name in ALLOWED_HEADERS.split(",")}
    assert RUDDERSTACK_HEADERS <= allowed, RUDDERSTACK_HEADERS - allowed
