"""DKIM signatures checked by an independent verifier (RFC 6376 relaxed/relaxed, RFC 8463).

dkimpy can't check Ed25519 here (it needs PyNaCl), so this verifier canonicalises the message
itself — not with dkim_sign's functions — looks the public key up in the published TXT record
and checks b= with `cryptography`: RSA over the signed data with SHA-256, Ed25519 over the
SHA-256 *hash* of it. Signing the raw input instead of its hash, a wrong header order or a
wrong canonicalisation all fail here.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from retarget.sender.dkim_sign import SigningKey, public_key_record, sign_message

RAW = (
    b"From: Shop <news@Shop.Example>\r\nTo: a@example.com\r\nSubject:  Your   cart\r\n\tis waiting\r\n"
    b"Date: Mon, 05 Jan 2026 12:00:00 +0000\r\nMessage-ID: <m-1@shop.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nCome  back \r\n\r\n\r\n"
)


def _headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, whole raw field without its final CRLF), folded lines kept."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            name, text = fields[-1]
            fields[-1] = (name, text + b"\r\n" + line)
        else:
            fields.append((line.split(b":", 1)[0].strip().lower(), line))
    return fields


def _relaxed(field: bytes) -> bytes:
    name, _, value = field.partition(b":")
    value = re.sub(rb"[ \t]+", b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value


def _relaxed_body(body: bytes) -> bytes:
    lines = [re.sub(rb"[ \t]+", b" ", line).rstrip(b" ") for line in body.split(b"\r\n")]
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def _tags(field: bytes) -> dict[str, str]:
    value = field.partition(b":")[2].decode()
    pairs = (t.split("=", 1) for t in value.split(";") if "=" in t)
    return {k.strip(): re.sub(r"\s+", "", v) for k, v in pairs}


def verify(message: bytes, txt_record: str, index: int = 0) -> None:
    """Raise (InvalidSignature, AssertionError) unless signature `index` is valid."""
    head, _, body = message.partition(b"\r\n\r\n")
    fields = _headers(head)
    signature_field = [f for n, f in fields if n == b"dkim-signature"][index]
    tags = _tags(signature_field)
    assert tags["c"] == "relaxed/relaxed"
    assert base64.b64decode(tags["bh"]) == hashlib.sha256(_relaxed_body(body)).digest(), "body hash"
    unused = list(fields)
    signed = b""
    for name in tags["h"].lower().split(":"):
        for i in range(len(unused) - 1, -1, -1):  # the bottom-most unused instance (RFC 6376 5.4.2)
            if unused[i][0] == name.encode():
                signed += _relaxed(unused.pop(i)[1]) + b"\r\n"
                break
    without_b = re.sub(rb"(^|;)(\s*b\s*=)[^;]*", rb"\1\2", _relaxed(signature_field))
    signed += without_b
    public = base64.b64decode(_tags(b"x:" + txt_record.encode())["p"])
    b = base64.b64decode(tags["b"])
    if tags["a"] == "ed25519-sha256":
        ed25519.Ed25519PublicKey.from_public_bytes(public).verify(b, hashlib.sha256(signed).digest())
    else:
        assert tags["a"] == "rsa-sha256"
        key = load_der_public_key(public)
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(b, signed, padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey(
        "shop.example", "r1", "rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )


@pytest.fixture(scope="module")
def ed_key() -> SigningKey:
    return SigningKey("shop.example", "e1", "ed25519", ed25519.Ed25519PrivateKey.generate())


@pytest.mark.parametrize("key_name", ["rsa_key", "ed_key"])
def test_a_signature_verifies_independently(key_name: str, request: pytest.FixtureRequest) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    verify(sign_message(RAW, [key]), public_key_record(key))


@pytest.mark.parametrize("key_name", ["rsa_key", "ed_key"])
def test_a_changed_header_or_body_breaks_the_signature(key_name: str, request: pytest.FixtureRequest) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    signed = sign_message(RAW, [key])
    with pytest.raises(InvalidSignature):
        verify(signed.replace(b"Subject:  Your", b"Subject:  Our"), public_key_record(key))
    with pytest.raises(AssertionError, match="body hash"):
        verify(signed.replace(b"Come  back", b"Come back!"), public_key_record(key))


def test_dual_signatures_each_verify(rsa_key: SigningKey, ed_key: SigningKey) -> None:
    signed = sign_message(RAW, [rsa_key, ed_key])
    verify(signed, public_key_record(rsa_key), index=0)
    verify(signed, public_key_record(ed_key), index=1)
    stranger = SigningKey("shop.example", "e1", "ed25519", ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(InvalidSignature):  # the verifier really checks against the key
        verify(signed, public_key_record(stranger), index=1)
