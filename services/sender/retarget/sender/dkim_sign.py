"""DKIM signatures (RFC 6376) with rsa-sha256 or ed25519-sha256 (RFC 8463), relaxed/relaxed.

The signature math goes through `cryptography` (OpenSSL): dkimpy's pure-Python RSA manages
about 100 signatures/s, OpenSSL's RSA-2048 about 1,000/s and Ed25519 about 40,000/s per core.
Canonicalisation is done here, on bytes, because it is a few lines and runs once per message;
dkimpy and OpenDKIM verify what this produces in the tests.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from retarget.sender.dkim_header import BH_MARK, T_MARK, header_template

Algorithm = Literal["rsa", "ed25519"]

# Headers signed when present. From is listed once more than it occurs ("oversigning"), so a
# From added in transit breaks the signature instead of being shown to the reader.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"cc",
    b"reply-to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
    b"feedback-id",
)

# Only runs that change: a tab, or a space followed by more white space (a lone space stays).
_WSP_RUN = re.compile(rb"(?:\t| (?=[ \t]))[ \t]*")
_FOLD = re.compile(rb"\r\n(?=[ \t])")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: Algorithm
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    def __repr__(self) -> str:  # the private key never reaches a log line
        return f"SigningKey({self.domain!r}, {self.selector!r}, {self.algorithm!r})"

    @property
    def a_tag(self) -> str:
        return "rsa-sha256" if self.algorithm == "rsa" else "ed25519-sha256"

    def sign_digest_input(self, data: bytes) -> bytes:
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(hashlib.sha256(data).digest())  # RFC 8463: Ed25519 over the SHA-256 hash


def split_message(raw: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(name, whole header field including its line ends) in order, and the body."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, body = raw.removesuffix(b"\r\n"), b""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + line + b"\r\n")
        elif line:
            fields.append((line.split(b":", 1)[0].strip().lower(), line + b"\r\n"))
    return fields, body


def relaxed_header(field: bytes) -> bytes:
    name, _, value = field.partition(b":")
    value = value.removesuffix(b"\r\n")
    if b"\r\n" in value:
        value = _FOLD.sub(b"", value)
    if b"\t" in value or b"  " in value:  # most header values have nothing to collapse
        value = _WSP_RUN.sub(b" ", value)
    value = value.strip(b" \t")
    return name.strip().lower() + b":" + value + b"\r\n"


# A campaign's messages share most header fields (From, Subject, Date, MIME, List-Unsubscribe…).
_relaxed_header_cached = functools.lru_cache(maxsize=4096)(relaxed_header)


def relaxed_body(body: bytes) -> bytes:
    if b"\t" in body or b"  " in body:
        body = _WSP_RUN.sub(b" ", body)
    if b" \r\n" in body or b"\t\r\n" in body:
        body = _TRAILING_WSP.sub(b"\r\n", body)
    end = len(body)
    while body.endswith(b"\r\n", 0, end):  # empty lines at the end are ignored (a regex is slower)
        end -= 2
    body = body[:end]
    return body + b"\r\n" if body else b""


def dkim_signature(
    raw: bytes,
    key: SigningKey,
    *,
    now: float | None = None,
    parsed: tuple[list[tuple[bytes, bytes]], bytes] | None = None,
) -> bytes:
    """The DKIM-Signature header field (with CRLF) to put in front of `raw`."""
    fields, body = parsed or split_message(raw)
    body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
    # The bottom-most instance of a repeated header is signed first (RFC 6376 5.4.2).
    remaining: dict[bytes, list[bytes]] = {}
    for name, field in fields:
        remaining.setdefault(name, []).append(field)
    names: list[bytes] = []
    signed = bytearray()
    for name in SIGNED_HEADERS:
        instances = remaining.get(name, [])
        for field in reversed(instances):
            names.append(name)
            signed += _relaxed_header_cached(field)
        if name == b"from":
            names.append(b"from")  # oversigned: the extra entry signs "no further From"
    t = str(int(now if now is not None else time.time()))
    template = header_template(key.a_tag, key.domain, key.selector, tuple(names), len(t))
    signed += (
        _canonical(template.text).replace(T_MARK * len(t), t.encode()).replace(BH_MARK, body_hash.encode())
    )
    signature = base64.b64encode(key.sign_digest_input(bytes(signed))).decode()
    return template.fill(t, body_hash, signature)


@functools.lru_cache(maxsize=1024)
def _canonical(unsigned: str) -> bytes:
    """The relaxed form of a header template (what is signed), without its line end and b= value."""
    return relaxed_header(unsigned.encode()).removesuffix(b"\r\n")


def sign_message(
    raw: bytes,
    keys: list[SigningKey],
    *,
    now: float | None = None,
    parsed: tuple[list[tuple[bytes, bytes]], bytes] | None = None,
) -> bytes:
    """`raw` with one DKIM-Signature per key prepended (none when `keys` is empty)."""
    parsed = parsed or split_message(raw)
    headers = b"".join(dkim_signature(raw, key, now=now, parsed=parsed) for key in keys)
    return headers + raw


def public_key_record(key: SigningKey) -> str:
    """The TXT record to publish at <selector>._domainkey.<domain>."""
    public = key.private_key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
