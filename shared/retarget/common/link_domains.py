"""Which link destinations a workspace's emails may carry: its own domains only.

Product pages and images arrive in events sent with the public write key, and every link in
an email becomes a signed, DKIM-covered redirect through ingest. Without this rule anyone
holding the public key could make a shop mail its customers a link to any site. So a
destination must be:

- https (plain http is refused: a network attacker could rewrite it on the way);
- a plain host: no userinfo (`https://shop.example@evil.example/` goes to evil.example), no
  explicit port, ASCII letters, digits, hyphens and dots only (IDN hosts must be written in
  their `xn--` form, so a look-alike Unicode host can't match), no backslash, whitespace or
  control character anywhere (browsers and Python's parser disagree about those);
- one of the workspace's link domains, or a subdomain of one (`www.shop.example` under
  `shop.example`; never `evilshop.example`).

A workspace's domains are `Workspace.link_domains`; unset (None) means the domain of its
from_email — the workspace's own site, the one the composer's shop link points at — and an
empty tuple means no links at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

from retarget.common.workspaces import Workspace

Refusal = Literal["malformed", "scheme", "userinfo", "port", "host", "off_domain"]

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_UNSAFE_CHAR = re.compile(r"[\x00-\x20\x7f\\]")


def normalise_domain(text: str) -> str:
    """A link domain as stored: lower case, ASCII, at least two labels; ValueError otherwise."""
    domain = text.strip().lower()
    if not domain.isascii():
        raise ValueError(f"{text!r}: write an internationalised domain in its xn-- form")
    if not _is_hostname(domain) or "." not in domain:
        raise ValueError(f"{text!r} is not a domain name such as shop.example")
    return domain


def allowed_link_domains(workspace: Workspace) -> tuple[str, ...]:
    """The workspace's link domains, or by default the domain of its from_email."""
    if workspace.link_domains is not None:
        return workspace.link_domains
    try:
        return (normalise_domain(workspace.from_email.rpartition("@")[2]),)
    except ValueError:
        return ()


def link_refusal(url: str, allowed: Iterable[str]) -> Refusal | None:
    """Why `url` may not be a link in this workspace's emails; None when it may."""
    if _UNSAFE_CHAR.search(url):
        return "malformed"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "malformed"
    if parts.scheme.lower() != "https":
        return "scheme"
    if "@" in parts.netloc:
        return "userinfo"
    if ":" in parts.netloc:
        return "port"
    host = parts.netloc.lower()
    if not _is_hostname(host):
        return "host"
    if not any(host == domain or host.endswith("." + domain) for domain in allowed):
        return "off_domain"
    return None


def _is_hostname(name: str) -> bool:
    # the last label of a DNS name is never all digits, so an IP address is never a hostname
    return bool(_HOSTNAME.fullmatch(name)) and not name.rpartition(".")[2].isdigit()
