"""Who fetched a tracking link: a person (directly or through a mailbox's image proxy) or a machine.

Pure rules over the User-Agent and the time since the email was issued; no I/O. Machine
fetches are kept and flagged, never dropped (docs/deliverability.md, "Open and click signals").

- Gmail and Yahoo load images through their proxies (`GoogleImageProxy` via ggpht.com,
  `YahooMailProxy`) when a person opens the mail, so those fetches are human opens, with the
  proxy named in `source` (the person's own client and address are hidden).
- Apple Mail Privacy Protection fetches every image through Apple's relays when the mail is
  *delivered*, opened or not, with a User-Agent of exactly `Mozilla/5.0`. Apple's egress
  addresses are not checked here (they come from Apple's published list, which changes), so
  any client sending that bare agent counts as Apple's; no mail client a person uses sends it.
- Security gateways and link scanners (Barracuda, Mimecast, Proofpoint, Microsoft's SafeLinks
  and BingPreview, Symantec, Cisco IronPort, HTTP libraries…) announce themselves.
- Link pre-fetches: scanners that pass for a browser still give themselves away by speed —
  a fetch within `prefetch_window_s` of the email's issue is a machine's (no person opens or
  clicks that fast, on average; a click then, with no open before it, is the classic scanner).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Source = Literal["gmail_proxy", "yahoo_proxy", "apple_mpp", "scanner", "prefetch", "client"]

PREFETCH_WINDOW_S = 10.0

_GMAIL_PROXY = re.compile(r"googleimageproxy|ggpht\.com", re.IGNORECASE)
_YAHOO_PROXY = re.compile(r"yahoomailproxy", re.IGNORECASE)
_APPLE_MPP = "mozilla/5.0"  # the whole agent, nothing else
_SCANNERS = re.compile(
    r"bot\b|crawler|spider|preview|scanner|"
    r"barracuda|mimecast|proofpoint|symantec|messagelabs|trend ?micro|fireeye|forcepoint|"
    r"zscaler|cisco|ironport|safelinks|microsoft office protocol|python-|curl/|wget/|"
    r"go-http-client|java/|okhttp|headless|libwww|httpclient|axios/|node-fetch",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FetchSignal:
    machine: bool
    source: Source


def classify_fetch(
    user_agent: str | None,
    *,
    seconds_since_issue: float | None,
    prefetch_window_s: float = PREFETCH_WINDOW_S,
) -> FetchSignal:
    """What an open or click fetch was. `seconds_since_issue` is None when the token says nothing
    of when it was issued (tokens signed before the issue time was added)."""
    agent = (user_agent or "").strip()
    if _GMAIL_PROXY.search(agent):
        return FetchSignal(False, "gmail_proxy")
    if _YAHOO_PROXY.search(agent):
        return FetchSignal(False, "yahoo_proxy")
    if agent.lower() == _APPLE_MPP:
        return FetchSignal(True, "apple_mpp")
    if not agent or _SCANNERS.search(agent):
        return FetchSignal(True, "scanner")
    if seconds_since_issue is not None and seconds_since_issue < prefetch_window_s:
        return FetchSignal(True, "prefetch")
    return FetchSignal(False, "client")
