"""dkim_sign.py's signatures checked by dkimpy (an independent verifier), for keys made by
retarget.config.dkim and looked up in the DNS records it prints."""

from __future__ import annotations

import base64
import hashlib

import dkim
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from retarget.config.dkim import dns_record, new_key_body, sealing_context
from retarget.config.seal import new_seal_key, unseal
from retarget.sender.dkim_sign import SigningKey, sign_message
from retarget.sender.testing import dns_answers

SEAL = base64.b64decode(new_seal_key())
RAW = (
    b"From: Shop <news@shop.example>\r\nTo: a@example.com\r\nSubject:  Your   cart\r\n\tis waiting\r\n"
    b"Date: Mon, 05 Jan 2026 12:00:00 +0000\r\nMessage-ID: <m-1@shop.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nCome  back \r\n\r\n\r\n"
)


def generated(selector: str, algorithm: str) -> tuple[SigningKey, str]:
    """A key as the sender gets it from the feed, and the DNS record an operator publishes."""
    body = new_key_body("ws1", selector, "shop.example", algorithm, SEAL)  # type: ignore[arg-type]
    pem = unseal(body["private_key_sealed"], SEAL, sealing_context("ws1", selector))
    private = load_pem_private_key(pem, password=None)
    key = SigningKey("shop.example", selector, algorithm, private)  # type: ignore[arg-type]
    return key, dns_record(selector, "shop.example", algorithm, body["public_key"])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[SigningKey, str]]:
    return {"rsa": generated("s-rsa", "rsa"), "ed25519": generated("s-ed", "ed25519")}


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_dkimpy_verifies_a_signature_with_the_printed_dns_record(keys, algorithm: str) -> None:
    key, record = keys[algorithm]
    assert dkim.verify(sign_message(RAW, [key]), dnsfunc=dns_answers([record]))


def test_the_long_rsa_record_is_split_into_strings_of_at_most_255(keys) -> None:
    _, record = keys["rsa"]
    strings = record.split(" TXT ", 1)[1].split('" "')
    assert len(strings) > 1 and all(len(s.strip('"')) <= 255 for s in strings)


def test_both_signatures_of_a_dual_signed_message_verify(keys) -> None:
    (rsa_key, rsa_record), (ed_key, ed_record) = keys["rsa"], keys["ed25519"]
    signed = sign_message(RAW, [rsa_key, ed_key])
    lookup = dns_answers([rsa_record, ed_record])
    assert dkim.DKIM(signed).verify(idx=0, dnsfunc=lookup)
    assert dkim.DKIM(signed).verify(idx=1, dnsfunc=lookup)


def test_a_changed_message_fails(keys) -> None:
    key, record = keys["ed25519"]
    signed = sign_message(RAW, [key])
    assert not dkim.verify(signed.replace(b"Come  back", b"Come back!"), dnsfunc=dns_answers([record]))
    assert not dkim.verify(signed.replace(b"Your   cart", b"Our cart"), dnsfunc=dns_answers([record]))


def test_ed25519_over_the_raw_input_instead_of_its_hash_fails(keys) -> None:
    """RFC 8463 signs the SHA-256 hash; a signer that signed the input itself must not pass."""
    key, record = keys["ed25519"]

    class RawInput(SigningKey):
        def sign_digest_input(self, data: bytes) -> bytes:
            return self.private_key.sign(data)  # type: ignore[call-arg, union-attr]

    wrong = RawInput(key.domain, key.selector, key.algorithm, key.private_key)
    assert not dkim.verify(sign_message(RAW, [wrong]), dnsfunc=dns_answers([record]))


def test_rsa_over_a_hash_of_the_hash_fails(keys) -> None:
    key, record = keys["rsa"]

    class Prehashed(SigningKey):
        def sign_digest_input(self, data: bytes) -> bytes:
            return super().sign_digest_input(hashlib.sha256(data).digest())

    wrong = Prehashed(key.domain, key.selector, key.algorithm, key.private_key)
    assert not dkim.verify(sign_message(RAW, [wrong]), dnsfunc=dns_answers([record]))
