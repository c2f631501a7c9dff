"""What the browser SDKs fetch when they load, so they need only their host options.

* Segment's analytics-next: `GET <cdnURL>/v1/projects/<writeKey>/settings`, the project's
  "cdnSettings". Only the `Segment.io` integration, whose `apiHost` + `protocol` send events
  here (`<protocol>://<apiHost>/t`, …); no other destination, remote plugin or metrics host.
* RudderStack's v3 SDK: `GET <configUrl>/sourceConfig?writeKey=…` (or Basic auth), a source
  with an id, a `config` object and no destinations (what its validity check asks for).

Both hold nothing but the write key the page already has: nothing secret, no workspace data.
"""

from __future__ import annotations

from typing import Any

SOURCE_ID = "retarget"  # an SDK needs one; the workspace id is not the page's business


def segment_cdn_settings(write_key: str, *, scheme: str, host: str) -> dict[str, Any]:
    """host: ingest's host[:port] as browsers reach it."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{host}/v1",
                "protocol": scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},  # the SDK's own telemetry to Segment: off
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


def rudderstack_source_config(write_key: str) -> dict[str, Any]:
    return {
        "isHostedService": False,
        "source": {
            "id": SOURCE_ID,
            "name": SOURCE_ID,
            "writeKey": write_key,
            "enabled": True,
            "config": {"statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}},
            "destinations": [],
        },
    }
