"""Which web origins may send a workspace's events from a browser (CORS): pure rules.

A workspace lists its allowed origins (`Workspace.allowed_origins`): exact origins as a
browser writes them in the `Origin` header, `scheme://host[:port]` (`https://shop.example`,
`http://127.0.0.1:8123`), or a leading-wildcard subdomain form `https://*.shop.example`
(any subdomain, at any depth, never `shop.example` itself nor `evilshop.example`).

Write keys are public, so an origin list does not keep anyone from sending events with a
script of their own; it is the shop's statement of where its tracking runs, which keeps
other sites' pages from sending visitors' events under its key through their browsers (and
reading the answers). So `*` alone is refused: it would state nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])"  # a name, an IPv4 address, or [IPv6]
_ORIGIN = re.compile(rf"(?P<scheme>https?)://(?P<wild>\*\.)?(?P<host>{_HOST})(?P<port>:\d{{1,5}})?")
DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def normalise_origin(text: str) -> str:
    """An allowed origin as stored: lower case, no default port; ValueError saying what is wrong."""
    origin = text.strip().lower()
    if origin == "*":
        raise ValueError(
            "'*' is refused: the list says where the workspace's tracking runs; name each origin "
            "(https://shop.example) or a subdomain wildcard (https://*.shop.example)"
        )
    if not origin.isascii():
        raise ValueError(f"{text!r}: write an internationalised host in its xn-- form")
    if origin.endswith("/"):
        origin = origin[:-1]  # what a copy from the address bar leaves; an origin has no path
    match = _ORIGIN.fullmatch(origin)
    if match is None:
        raise ValueError(
            f"{text!r} is not an origin: scheme http or https, a host and an optional port, "
            "nothing else (no path, query or fragment), e.g. https://shop.example or "
            "http://127.0.0.1:8123"
        )
    port = match["port"]
    if port is not None and not 0 < int(port[1:]) < 65536:
        raise ValueError(f"{text!r}: port out of range")
    if port == DEFAULT_PORTS[match["scheme"]]:
        origin = origin[: -len(port)]  # browsers never send the default port
    if match["wild"] and "." not in match["host"]:
        raise ValueError(f"{text!r}: a wildcard covers subdomains of a domain such as shop.example")
    return origin


def normalise_origins(texts: Iterable[str]) -> list[str]:
    """Each origin normalised, duplicates dropped, in the given order."""
    return list(dict.fromkeys(normalise_origin(t) for t in texts))


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """Whether the `Origin` header's value matches one of the allowed origins (normalised)."""
    origin = origin.lower()
    scheme, sep, rest = origin.partition("://")
    if not sep:
        return False  # "null" (sandboxed frames, file: pages) and anything malformed
    host, _, port = rest.partition(":")
    for pattern in allowed:
        if pattern == origin:
            return True
        wild_scheme, _, wild_domain = pattern.partition("://*.")  # "https://*.shop.example[:port]"
        if wild_domain and wild_scheme == scheme:
            domain, _, wild_port = wild_domain.partition(":")
            if port == wild_port and host.endswith(f".{domain}"):
                return True
    return False
