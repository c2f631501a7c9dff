"""DKIM: signatures dkimpy accepts, canonicalisation edge cases, and the keys folder."""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from retarget.sender.dkim_keys import DkimKeys, MissingKey, from_domain, load_key
from retarget.sender.dkim_sign import (
    SigningKey,
    public_key_record,
    relaxed_body,
    relaxed_header,
    sign_message,
)

RAW = (
    b"From: Shop <news@Shop.Example>\r\nTo: a@example.com\r\nSubject:  Your   cart\r\n\tis waiting\r\n"
    b"Date: Mon, 05 Jan 2026 12:00:00 +0000\r\nMessage-ID: <m-1@shop.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nList-Unsubscribe: <https://u.example/x>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nCome  back \r\n\r\n\r\n"
)


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey(
        "shop.example", "s1", "rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )


def _dns(*keys: SigningKey):  # type: ignore[no-untyped-def]
    records = {f"{k.selector}._domainkey.{k.domain}.".encode(): public_key_record(k).encode() for k in keys}
    return lambda name, timeout=5: records.get(name)


def test_relaxed_canonicalisation() -> None:
    assert relaxed_header(b"SUBJECT :  a \r\n\t b  \r\n") == b"subject:a b\r\n"
    assert relaxed_body(b"a  b \r\n\r\n\r\n") == b"a b\r\n"
    assert relaxed_body(b"") == b"" and relaxed_body(b"\r\n\r\n") == b""
    assert relaxed_body(b"no newline") == b"no newline\r\n"
    assert relaxed_body(b"a \tb\t\tc d\t\r\n") == b"a b c d\r\n"


def test_an_rsa_signature_verifies_with_dkimpy_and_breaks_when_the_body_changes(rsa_key: SigningKey) -> None:
    signed = sign_message(RAW, [rsa_key])
    assert signed.endswith(RAW) and all(len(line) <= 78 for line in signed.split(b"\r\n"))
    assert dkim.verify(signed, dnsfunc=_dns(rsa_key))
    assert not dkim.verify(signed.replace(b"Come  back", b"Come back!"), dnsfunc=_dns(rsa_key))


def test_from_is_oversigned_so_an_added_from_breaks_the_signature(rsa_key: SigningKey) -> None:
    signed = sign_message(RAW, [rsa_key])
    assert b"h=from:from:" in signed.replace(b"\r\n\t", b"")
    head, _, body = signed.partition(b"\r\n\r\n")
    forged = head + b"\r\nFrom: evil@attacker.example\r\n\r\n" + body
    assert not dkim.verify(forged, dnsfunc=_dns(rsa_key))


def test_two_selectors_give_two_signatures(rsa_key: SigningKey) -> None:
    ed = SigningKey("shop.example", "e1", "ed25519", ed25519.Ed25519PrivateKey.generate())
    signed = sign_message(RAW, [rsa_key, ed])
    assert signed.count(b"DKIM-Signature:") == 2
    assert b"a=ed25519-sha256" in signed and b"a=rsa-sha256" in signed
    assert dkim.DKIM(signed).verify(idx=0, dnsfunc=_dns(rsa_key))  # headers in the order of the keys
    assert public_key_record(ed).startswith("v=DKIM1; k=ed25519; p=")


def _write(folder: Path, name: str, key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> None:
    (folder / name).write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))


def test_the_keys_folder_maps_domain_and_selector_to_a_key(tmp_path: Path, rsa_key: SigningKey) -> None:
    _write(tmp_path, "shop.example.s1.rsa.pem", rsa_key.private_key)
    _write(tmp_path, "shop.example.e1.ed25519.pem", ed25519.Ed25519PrivateKey.generate())
    _write(
        tmp_path, "weak.example.s1.rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=1024)
    )
    _write(tmp_path, "wrong.example.s1.ed25519.pem", rsa_key.private_key)
    keys = DkimKeys(tmp_path)
    keys.scan()
    assert [k.algorithm for k in keys.keys_for("SHOP.example", ("s1", "e1"))] == ["rsa", "ed25519"]
    with pytest.raises(MissingKey, match=r"weak\.example"):
        keys.keys_for("weak.example", ("s1",))  # refused: under 2048 bits
    with pytest.raises(MissingKey):
        keys.keys_for("wrong.example", ("s1",))
    signed = keys.sign(RAW, ("s1",))
    assert dkim.verify(signed, dnsfunc=_dns(rsa_key))
    assert keys.sign(RAW, ()) == RAW  # no selector: unsigned, the relay may sign


def test_a_key_added_later_is_found_after_the_rescan_interval(tmp_path: Path, rsa_key: SigningKey) -> None:
    keys = DkimKeys(tmp_path, rescan_s=0)
    keys.scan()
    with pytest.raises(MissingKey):
        keys.keys_for("shop.example", ("s1",))
    _write(tmp_path, "shop.example.s1.rsa.pem", rsa_key.private_key)
    assert keys.keys_for("shop.example", ("s1",))


def test_key_names_and_private_material_stay_out_of_reprs(tmp_path: Path, rsa_key: SigningKey) -> None:
    _write(tmp_path, "shop.example.s1.rsa.pem", rsa_key.private_key)
    key = load_key(tmp_path / "shop.example.s1.rsa.pem")
    assert repr(key) == "SigningKey('shop.example', 's1', 'rsa')"
    with pytest.raises(ValueError, match=r"<domain>\.<selector>"):
        _write(tmp_path, "nodots.pem", rsa_key.private_key)
        load_key(tmp_path / "nodots.pem")


def test_the_signing_domain_is_the_from_headers() -> None:
    assert from_domain(RAW) == "shop.example"
    assert from_domain(b'From: "Shop, Inc" <news@Mail.Shop.example> (news)\r\n\r\nx') == "mail.shop.example"
    assert from_domain(b"From: news@shop.example\r\nTo: a@other.example\r\n\r\nx") == "shop.example"
    with pytest.raises(MissingKey):
        from_domain(b"Subject: x\r\n\r\nbody")
