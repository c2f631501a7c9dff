"""Who fetched a tracking link: real User-Agent strings of mailbox proxies, privacy relays and
scanners, as their vendors document them or as they appear in tracking logs."""

from __future__ import annotations

import pytest

from retarget.ingest.open_signals import FetchSignal, classify_fetch

# People: their own mail client, or their mailbox's image proxy fetching when they open the mail.
HUMAN = {
    # Gmail's image proxy (web, Android and iOS apps all fetch through it)
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)": "gmail_proxy",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 "
    "Safari/537.36 Edge/12.246 (via ggpht.com GoogleImageProxy)": "gmail_proxy",
    # Yahoo Mail's (and AOL's) image proxy
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html": "yahoo_proxy",
    # mail clients loading images themselves
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)": "client",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148": "client",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)": "client",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Thunderbird/115.5.0": "client",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36": "client",
}

# Machines: Apple's Mail Privacy Protection relays, security gateways, link scanners, libraries.
MACHINE = {
    "Mozilla/5.0": "apple_mpp",  # MPP's prefetch through Apple's relays: the bare token, nothing else
    " Mozilla/5.0 ": "apple_mpp",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) BingPreview/1.0b": "scanner",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b": "scanner",
    "Microsoft Office Protocol Discovery": "scanner",  # Office fetching a link to see what it is
    "Mozilla/5.0 (compatible; SafeLinks)": "scanner",
    "Barracuda Sentinel (EE)": "scanner",
    "Mozilla/5.0 (compatible; Barracuda Link Protection)": "scanner",
    "Mimecast-Url-Protect/1.0": "scanner",
    "Proofpoint URL Defense": "scanner",
    "Symantec Web Security Service": "scanner",
    "Cisco-IronPort-AsyncOS/14.0": "scanner",
    "python-requests/2.31.0": "scanner",
    "curl/8.4.0": "scanner",
    "Wget/1.21.4": "scanner",
    "Go-http-client/1.1": "scanner",
    "": "scanner",  # no agent at all: no browser or mail client does that
}


@pytest.mark.parametrize(("agent", "source"), sorted(HUMAN.items()))
def test_people_and_their_mailbox_proxies_are_human_opens(agent: str, source: str) -> None:
    assert classify_fetch(agent, seconds_since_issue=3600) == FetchSignal(False, source)  # type: ignore[arg-type]


@pytest.mark.parametrize(("agent", "source"), sorted(MACHINE.items()))
def test_privacy_relays_scanners_and_libraries_are_machine_fetches(agent: str, source: str) -> None:
    assert classify_fetch(agent, seconds_since_issue=3600) == FetchSignal(True, source)  # type: ignore[arg-type]


def test_no_agent_header_is_a_machine() -> None:
    assert classify_fetch(None, seconds_since_issue=None) == FetchSignal(True, "scanner")


def test_a_browser_fetch_within_the_window_after_issue_is_a_prefetch() -> None:
    browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
    assert classify_fetch(browser, seconds_since_issue=2) == FetchSignal(True, "prefetch")
    assert classify_fetch(browser, seconds_since_issue=9.9) == FetchSignal(True, "prefetch")
    assert classify_fetch(browser, seconds_since_issue=10) == FetchSignal(False, "client")
    assert classify_fetch(browser, seconds_since_issue=None) == FetchSignal(False, "client")  # old token
    assert classify_fetch(browser, seconds_since_issue=20, prefetch_window_s=30).machine


def test_a_proxy_fetch_right_after_delivery_is_still_the_person_opening() -> None:
    # Gmail fetches through its proxy only when the mail is opened, however soon that is
    gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    assert classify_fetch(gmail, seconds_since_issue=1) == FetchSignal(False, "gmail_proxy")
